"""API parity: the candidate exports the reference's names with the reference's signatures.

Allowed differences: backend options the candidate adds as keyword arguments with defaults
(`BACKEND_OPTIONS`), the reference's teaching-only names, and the names the candidate declares in
its `NOT_YET_IMPLEMENTED` (which this test checks is exactly what is missing, no more, no less).
"""

import inspect

import pytest

import reference

BACKEND_OPTIONS = {"dtype", "device"}


def public(mod):
    return set(mod.__all__)


def test_names(candidate):
    expected = public(reference) - reference.TEACHING_ONLY
    declared = set(getattr(candidate, "NOT_YET_IMPLEMENTED", ()))
    missing = expected - public(candidate)
    assert missing == declared, (
        f"missing but not declared: {sorted(missing - declared)}; "
        f"declared but present: {sorted(declared - missing)}"
    )
    extra = public(candidate) - public(reference)
    assert not extra, f"names the reference does not have: {sorted(extra)}"
    for name in public(candidate):
        assert hasattr(candidate, name), f"{name} is in __all__ but not defined"


def signature_of(obj):
    try:
        target = obj.__init__ if inspect.isclass(obj) else obj
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


def comparable(sig):
    """(name, kind, default) of each parameter, without the backend options."""
    return [
        (p.name, p.kind, p.default)
        for p in sig.parameters.values()
        if p.name not in BACKEND_OPTIONS
    ]


def shared_callables(candidate):
    names = sorted(public(candidate) & public(reference))
    return [n for n in names if callable(getattr(reference, n))]


def test_signatures(candidate):
    problems = []
    for name in shared_callables(candidate):
        r, c = signature_of(getattr(reference, name)), signature_of(getattr(candidate, name))
        if r is None or c is None:
            continue
        if comparable(r) != comparable(c):
            problems.append(f"{name}: reference {r}, candidate {c}")
        extra = [p for p in c.parameters if p not in r.parameters]
        if any(p not in BACKEND_OPTIONS for p in extra):
            problems.append(f"{name}: unexpected extra parameters {extra}")
    assert not problems, "\n".join(problems)


def test_public_methods_match(candidate):
    problems = []
    for name in shared_callables(candidate):
        r, c = getattr(reference, name), getattr(candidate, name)
        if not (inspect.isclass(r) and inspect.isclass(c)):
            continue
        for attr, member in vars(r).items():
            if attr.startswith("_") or not callable(member):
                continue
            cm = getattr(c, attr, None)
            if cm is None:
                problems.append(f"{name}.{attr} missing")
                continue
            rs, cs = signature_of(getattr(r, attr)), signature_of(cm)
            if rs and cs and comparable(rs) != comparable(cs):
                problems.append(f"{name}.{attr}: reference {rs}, candidate {cs}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("option", sorted(BACKEND_OPTIONS))
def test_backend_options_are_keyword_with_defaults(candidate, option):
    for name in shared_callables(candidate):
        sig = signature_of(getattr(candidate, name))
        if sig and option in sig.parameters:
            p = sig.parameters[option]
            assert p.default is not inspect.Parameter.empty, f"{name}({option}=...) needs a default"
