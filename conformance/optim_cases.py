"""Bad optimizer state dicts shared by the conformance same-error test and each backend's tests:
one edit of a valid state dict per check that `load_state_dict` makes."""


def bad_state_dicts(name="Adam"):
    """(edit of a valid 1-step state dict, error type, message fragment): one per check."""

    def group(i, **kw):
        return lambda sd: sd["param_groups"][i].update(kw)

    def entry(i, **kw):
        return lambda sd: sd["state"][i].update(kw)

    def delete(*path):
        def edit(sd):
            d = sd
            for k in path[:-1]:
                d = d[k]
            del d[path[-1]]

        return edit

    common = [
        (lambda sd: sd.update(extra=1), ValueError, "unknown keys 'extra'"),
        (delete("state"), ValueError, "missing 'state'"),
        (delete("param_groups"), ValueError, "missing 'param_groups'"),
        (lambda sd: sd.update(param_groups={}), TypeError, r"\['param_groups'\] must be a list"),
        (lambda sd: sd["param_groups"].pop(), ValueError, "has 1 groups, this optimizer has 2"),
        (lambda sd: sd["param_groups"].__setitem__(0, 3), TypeError, r"\[0\] must be a dict"),
        (group(0, params=[0]), ValueError, r"\['params'\] lists 1 parameters"),
        (group(0, params=[1, 0]), ValueError, r"is \[1, 0\], expected \[0, 1\]"),
        (group(1, params=None), TypeError, r"\['params'\] must be a list"),
        (group(0, lr=-1.0), ValueError, r"\[0\]: lr must be a finite number >= 0"),
        (group(1, lr="x"), TypeError, "lr must be a number"),
        (group(0, bogus=1), ValueError, "unknown option 'bogus'"),
        (group(0, maximize=True), ValueError, "only maximize=False"),
        (group(0, initial_lr=-1.0), ValueError, "initial_lr must be a finite number >= 0"),
        (group(0, initial_lr="0.1"), ValueError, "initial_lr must be a number"),
        (delete("param_groups", 1, "lr"), ValueError, r"\[1\] is missing the option 'lr'"),
        (lambda sd: sd.update(state=[]), TypeError, r"\['state'\] must be a dict"),
        (lambda sd: sd["state"].update({"0": {}}), TypeError, "must be parameter numbers"),
        (lambda sd: sd["state"].update({3: {}}), ValueError, "parameter number 3"),
        (lambda sd: sd["state"].update({0: 5}), TypeError, r"\[0\] must be a dict"),
        (entry(0, bogus=[1.0]), ValueError, "unknown keys 'bogus'"),
    ]
    if name == "SGD":
        return common + [
            (group(0, nesterov=True, momentum=0.0), ValueError, "nesterov needs momentum"),
            (group(0, nesterov=1), TypeError, "nesterov must be True or False"),
            (group(0, dampening=0.5), ValueError, "only dampening=0"),
            (entry(2, momentum_buffer=[[1.0, 2.0]]), ValueError,
             r"\['momentum_buffer'\] has shape \(1, 2\), expected \(2, 1\)"),
        ]  # fmt: skip
    return common + [
        (group(0, betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in"),
        (group(0, betas=0.9), TypeError, "betas'] must be a pair"),
        (group(0, eps=-1.0), ValueError, "eps must be"),
        (group(0, amsgrad=True), ValueError, "only amsgrad=False"),
        (group(0, decoupled_weight_decay=name == "Adam"), ValueError, "decoupled_weight_decay"),
        (delete("state", 1, "exp_avg_sq"), ValueError, r"\[1\] is missing 'exp_avg_sq'"),
        (
            entry(2, exp_avg=[[1.0, 2.0]]),
            ValueError,
            r"\[2\]\['exp_avg'\] has shape \(1, 2\), expected \(2, 1\)",
        ),
        (entry(1, exp_avg=[1.0, [2.0]]), ValueError, "not a rectangular tensor"),
        (entry(1, exp_avg=[1.0, "a"]), TypeError, r"\['exp_avg'\] must hold numbers"),
        (entry(1, exp_avg=[1.0, True]), TypeError, "must hold numbers"),
        (entry(1, exp_avg=[1.0, float("nan")]), ValueError, "must be finite"),
        (entry(1, exp_avg_sq=[1.0, -1.0]), ValueError, "must be finite and >= 0"),
        (entry(1, step=-1), ValueError, r"\['step'\] must be a non-negative integer"),
        (entry(1, step=1.5), ValueError, "non-negative integer, got 1.5"),
        (entry(1, step="3"), TypeError, "non-negative integer, got str"),
        (entry(1, step=True), TypeError, "non-negative integer, got bool"),
        (entry(1, step=2**63), ValueError, "below 2\\*\\*63"),
    ]
