"""The conformance suite's one knob: which backend is the candidate.

The reference is always the oracle. The candidate is `fast` unless you name another importable
module, so a learner who writes a backend of their own can check it against the spec:

    python -m pytest conformance --backend mybackend
    CONFORMANCE_BACKEND=mybackend python -m pytest conformance
"""

import importlib

import pytest

import reference


@pytest.fixture(scope="session")
def candidate(request):
    """The backend under test, imported by name (the --backend option, see /conftest.py)."""
    return importlib.import_module(request.config.getoption("--backend"))


@pytest.fixture(scope="session")
def ref():
    return reference
