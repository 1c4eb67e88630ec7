"""fast optimizers save and restore their state: bit-identical resume per dtype, copies out,
casts in, the reference's checks (plus the packed buffers' own), GPU <-> CPU, and PyTorch's
`torch.optim` state dicts."""

import numpy as np
import pytest

import fast
from conformance.optim_cases import bad_state_dicts
from fast.device import is_device_array, to_device
from tests.reference.test_optim import RESUMABLE

SHAPES = [(2, 3), (2,), (2, 1)]
INIT = [np.linspace(-1.5, 2.0, int(np.prod(s))).reshape(s) for s in SHAPES]
DTYPES = ["float32", "float64"]


def build(name, options, dtype, init=INIT, device="cpu"):
    ps = [fast.Parameter(a, dtype=dtype) for a in init]
    if device == "cuda":
        for p in ps:
            p.data = to_device(p.data, "cuda")
            p.grad = to_device(np.zeros(p.shape, dtype=p.data.dtype), "cuda")
    groups = [{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.0}]
    return ps, getattr(fast, name)(groups, **options)


def grad(p, s, i):
    return np.sin(1.3 * np.arange(int(np.prod(p.shape))) + s + i).reshape(p.shape)


def train(ps, opt, first, last):
    for s in range(first, last):
        for i, p in enumerate(ps):
            g = grad(p, s, i).astype(p.grad.dtype)
            p.grad[...] = to_device(g, "cuda") if is_device_array(p.grad) else g
        opt.step()


def host(x):
    return x.copy_to_host() if hasattr(x, "copy_to_host") else np.array(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, options", RESUMABLE)
def test_resume_is_bit_identical(name, options, dtype):
    ps, opt = build(name, options, dtype)
    train(ps, opt, 0, 6)
    straight = [p.data.copy() for p in ps]

    ps, opt = build(name, options, dtype)
    train(ps, opt, 0, 3)
    saved, weights = opt.state_dict(), [p.data.copy() for p in ps]
    ps, opt = build(name, options, dtype, init=weights)
    opt.load_state_dict(saved)
    train(ps, opt, 3, 6)
    for p, want in zip(ps, straight):
        assert p.data.dtype == want.dtype
        assert np.array_equal(p.data, want)


def test_state_dict_is_copies_in_the_optimizers_dtype():
    ps, opt = build("AdamW", dict(lr=0.01, betas=(0.9, 0.95)), "float32")
    train(ps, opt, 0, 2)
    sd = opt.state_dict()
    assert sd["param_groups"] == [
        {"lr": 0.01, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.01, "params": [0, 1]},
        {"lr": 0.01, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.0, "params": [2]},
    ]
    for i, p in enumerate(ps):
        entry = sd["state"][i]
        assert entry["step"] == 2 and type(entry["step"]) is int
        for k in ("exp_avg", "exp_avg_sq"):
            assert isinstance(entry[k], np.ndarray) and entry[k].dtype == np.float32
            assert entry[k].shape == p.shape
            entry[k][...] = 7.0  # scribbling on the copy ...
        entry["step"] = 99
    sd["param_groups"][0]["lr"] = 5.0
    again = opt.state_dict()  # ... changes nothing in the optimizer
    assert again["param_groups"][0]["lr"] == 0.01
    assert all(again["state"][i]["step"] == 2 for i in range(3))
    assert not any((again["state"][i]["exp_avg"] == 7.0).any() for i in range(3))


def test_sgd_has_state_only_with_momentum():
    ps, opt = build("SGD", dict(lr=0.1), "float64")
    train(ps, opt, 0, 2)
    assert opt.state_dict()["state"] == {}
    ps, opt = build("SGD", dict(lr=0.1, momentum=0.9), "float64")
    assert opt.state_dict()["state"] == {}
    train(ps, opt, 0, 1)
    assert set(opt.state_dict()["state"]) == {0, 1, 2}


@pytest.mark.parametrize("saved_dtype, dtype", [("float64", "float32"), ("float32", "float64")])
def test_state_is_cast_to_the_optimizers_dtype(saved_dtype, dtype):
    ps, opt = build("Adam", dict(lr=0.01), saved_dtype)
    train(ps, opt, 0, 2)
    sd = opt.state_dict()
    ps, opt = build("Adam", dict(lr=0.01), dtype)
    opt.load_state_dict(sd)
    out = opt.state_dict()
    for i in range(3):
        assert out["state"][i]["exp_avg"].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(
            out["state"][i]["exp_avg"], sd["state"][i]["exp_avg"].astype(dtype)
        )


def test_reference_state_loads_into_fast_and_back():
    import reference

    rps = [reference.Parameter(a.tolist()) for a in INIT]
    ropt = reference.AdamW([{"params": rps[:2]}, {"params": rps[2:]}], lr=0.01)
    for s in range(2):
        for i, p in enumerate(rps):
            p.grad = grad(p, s, i).tolist()
        ropt.step()
    ps, opt = build("AdamW", dict(lr=0.01), "float64")
    opt.load_state_dict(ropt.state_dict())
    for i, entry in opt.state_dict()["state"].items():
        np.testing.assert_array_equal(entry["exp_avg"], ropt.state_dict()["state"][i]["exp_avg"])
    train(ps, opt, 2, 3)
    ropt.load_state_dict(opt.state_dict())
    assert ropt.state_dict()["state"][0]["step"] == 3


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_bad_state_dicts_are_refused_and_change_nothing(name):
    options = dict(lr=0.01, momentum=0.9) if name == "SGD" else dict(lr=0.01)
    key = "momentum_buffer" if name == "SGD" else "exp_avg"
    for edit, error, match in bad_state_dicts(name) + array_cases(name):
        ps, opt = build(name, options, "float32")
        train(ps, opt, 0, 1)
        before = opt.state_dict()
        sd = opt.state_dict()
        sd["param_groups"][0]["lr"] = 0.5  # valid changes, which a refused load must not make
        sd["state"][0][key] = np.zeros(ps[0].shape)
        edit(sd)
        with pytest.raises(error, match=match):
            opt.load_state_dict(sd)
        after = opt.state_dict()
        assert after["param_groups"] == before["param_groups"]
        for i, entry in before["state"].items():
            for k, v in entry.items():
                assert np.array_equal(after["state"][i][k], v), (match, i, k)


def array_cases(name):
    """Bad numpy tensors, and what only a packed buffer refuses."""
    key = "momentum_buffer" if name == "SGD" else "exp_avg"

    def entry(i, **kw):
        return lambda sd: sd["state"][i].update(kw)

    cases = [
        (entry(2, **{key: np.zeros((1, 2))}), ValueError, r"has shape \(1, 2\), expected \(2, 1\)"),
        (entry(1, **{key: np.zeros(2, dtype=bool)}), TypeError, "must hold numbers"),
        (entry(1, **{key: np.array([0.0, np.inf])}), ValueError, "must be finite"),
        (lambda sd: sd["state"].pop(1), ValueError, "but none for parameter 1"),
    ]
    if name != "SGD":
        cases += [
            (entry(1, exp_avg_sq=np.array([1.0, -1.0])), ValueError, "finite and >= 0"),
            (entry(1, step=np.int64(5)), ValueError, r"\['step'\] is 5 but parameter 0"),
        ]
    return cases


def test_one_buffer_per_dtype_in_a_group():
    # a group with a float32 and a float64 parameter packs two buffers, each with its own step
    ps = [fast.Parameter(INIT[0], dtype="float32"), fast.Parameter(INIT[1], dtype="float64")]
    opt = fast.Adam(ps, lr=0.01)
    train(ps, opt, 0, 1)
    sd = opt.state_dict()
    sd["state"][1]["step"] = 4  # alone in its buffer: may differ from parameter 0
    opt.load_state_dict(sd)
    out = opt.state_dict()["state"]
    assert (out[0]["step"], out[1]["step"]) == (1, 4)
    assert out[0]["exp_avg"].dtype == np.float32 and out[1]["exp_avg"].dtype == np.float64


def test_gpu_state_loads_into_cpu_and_back():
    ps, opt = build("Adam", dict(lr=0.01), "float32", device="cuda")
    train(ps, opt, 0, 1)
    sd = opt.state_dict()
    assert isinstance(sd["state"][0]["exp_avg"], np.ndarray)
    assert sd["state"][0]["exp_avg"].dtype == np.float32
    weights = [host(p.data) for p in ps]
    cps, copt = build("Adam", dict(lr=0.01), "float32", init=weights)
    copt.load_state_dict(sd)  # GPU -> CPU
    train(cps, copt, 1, 2)
    gps, gopt = build("Adam", dict(lr=0.01), "float32", init=weights, device="cuda")
    gopt.load_state_dict(sd)  # and into the device buffers of another GPU optimizer
    train(gps, gopt, 1, 2)
    back = copt.state_dict()
    for i, (gp, cp) in enumerate(zip(gps, cps)):
        np.testing.assert_allclose(host(gp.data), cp.data, rtol=1e-6)
        assert back["state"][i]["step"] == 2
    opt.load_state_dict(back)  # CPU -> GPU
    for i, entry in opt.state_dict()["state"].items():
        assert entry["step"] == 2
        np.testing.assert_array_equal(entry["exp_avg"], back["state"][i]["exp_avg"])


TORCH_OPTIONS = {
    "AdamW": dict(lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1),
    "SGD": dict(lr=0.05, momentum=0.9, weight_decay=0.01),
}


def torch_optimizer(torch, which, init, scheduled=False):
    """torch parameters (float32) and a torch.optim optimizer over them, grouped as `build`
    groups ours; `scheduled` attaches a learning-rate scheduler, which writes `initial_lr` into
    every group (as a torch training loop with a schedule saves it)."""
    tps = [torch.nn.Parameter(torch.tensor(a, dtype=torch.float32)) for a in init]
    groups = [{"params": tps[:2]}, {"params": tps[2:], "weight_decay": 0.0}]
    topt = getattr(torch.optim, which)(groups, **TORCH_OPTIONS[which])
    if scheduled:
        torch.optim.lr_scheduler.LambdaLR(topt, lambda step: 1.0)
        assert all("initial_lr" in g for g in topt.state_dict()["param_groups"])
    return tps, topt


def torch_train(torch, tps, topt, first, last):
    for s in range(first, last):
        for i, p in enumerate(tps):
            p.grad = torch.tensor(grad(p, s, i), dtype=torch.float32)
        topt.step()


@pytest.mark.parametrize("scheduled", [False, True], ids=["plain", "with-scheduler"])
@pytest.mark.parametrize("which", ["AdamW", "SGD"])
def test_torch_state_dict_loads_and_steps_alike(which, scheduled):
    torch = pytest.importorskip("torch")
    tps, topt = torch_optimizer(torch, which, INIT, scheduled)
    torch_train(torch, tps, topt, 0, 3)
    with torch.no_grad():
        ps, opt = build(which, TORCH_OPTIONS[which], "float32", [p.numpy().copy() for p in tps])
    opt.load_state_dict(topt.state_dict())
    torch_train(torch, tps, topt, 3, 4)
    train(ps, opt, 3, 4)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("which", ["AdamW", "SGD"])
def test_our_state_dict_loads_into_torch_and_steps_alike(which):
    """The other direction: our state_dict, its arrays made tensors (torch.as_tensor), is what
    torch.optim's load_state_dict takes, and both then take the same step."""
    torch = pytest.importorskip("torch")
    ps, opt = build(which, TORCH_OPTIONS[which], "float32")
    train(ps, opt, 0, 3)
    tps, topt = torch_optimizer(torch, which, [p.data.copy() for p in ps])
    saved = opt.state_dict()
    saved["state"] = {
        i: {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in entry.items()}
        for i, entry in saved["state"].items()
    }
    topt.load_state_dict(saved)
    torch_train(torch, tps, topt, 3, 4)
    train(ps, opt, 3, 4)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-6, atol=1e-6)
