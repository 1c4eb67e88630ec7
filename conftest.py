"""Test-wide settings (tests/ and conformance/): Hypothesis profiles.

`ci` (the default) keeps property tests to a few, fixed examples so the whole suite runs in minutes
on two cores and gives the same verdict every time; `thorough` draws 500 fresh examples per test
for local runs: HYPOTHESIS_PROFILE=thorough python -m pytest
"""

import os

# CUDA tests run everywhere (docs/design.md, "Tests"): on the GPU where there is one, otherwise in
# Numba's CUDA simulator, which must be chosen before numba is first imported.
if "NUMBA_ENABLE_CUDASIM" not in os.environ and not os.path.exists("/dev/nvidia0"):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci",
    max_examples=20,
    deadline=None,
    derandomize=True,  # the same examples every run: CI is reproducible; `thorough` explores
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# `cuda`: 3 fixed examples per property, for the CUDA backend's model conformance (the simulator
# runs each GPU thread in Python; on a lent GPU it keeps the first real run inside its budget)
settings.register_profile(
    "cuda", max_examples=3, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption(
        "--backend",
        default=os.environ.get("CONFORMANCE_BACKEND", "fast"),
        help="conformance/: the module checked against `reference` "
        "(default: fast, or $CONFORMANCE_BACKEND)",
    )


def pytest_sessionfinish(session, exitstatus):
    """Under CI (CI=true) a skipped test fails the run: CI installs every extra the tests use,
    so a skip there means an oracle silently did not run."""
    if not os.environ.get("CI") or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        for report in skipped[:10]:
            print(f"\nskipped under CI: {report.nodeid}: {report.longrepr}")
        session.exitstatus = 1
