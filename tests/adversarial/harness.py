"""Run one bad input in its own Python process and classify what happened.

A kernel that writes out of bounds kills the process with a signal, and a missing stopping rule
hangs it; neither can be caught inside the test run. So every case that can reach a kernel runs
in a child interpreter: the child executes the case's code, catches whatever it raises, and prints
one JSON line (`{"outcome": "error", "type": ..., "message": ...}` or `{"outcome": "ok", ...}`);
the parent reads that line, or reports the signal or the time-out.

The rule the adversarial suite enforces (issue: memory safety and clear errors): a bad input gets
a `ValueError`/`TypeError` (or one of the project's own error classes, which derive from them)
whose message names the argument, what was expected and what was given, or a correct result:
never a signal, a hang, or numpy's/Python's internal message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_RUNNER = """
import json, sys, traceback
sys.path.insert(0, {root!r})
def _report(**kw):
    sys.stdout.write("\\n@@OUTCOME@@" + json.dumps(kw) + "\\n")
    sys.stdout.flush()
try:
{body}
except BaseException as _e:
    _report(outcome="error", type=type(_e).__name__,
            mro=[c.__name__ for c in type(_e).__mro__], message=str(_e),
            traceback=traceback.format_exc(limit=3))
else:
    _report(outcome="ok", result=repr(globals().get("result"))[:2000])
"""

# Messages that mean an internal failure leaked out instead of a check at the boundary.
INTERNAL_MESSAGES = (
    "slice indices must be integers",
    "unhashable type",
    "object has no attribute",
    "object is not callable",
    "object is not subscriptable",
    "operands could not be broadcast",
    "negative dimensions are not allowed",
    "index out of range",
    "list index out of range",
    "division by zero",
    "cannot reshape array",
    "invalid literal for int()",
    "Expecting value",  # a bare JSONDecodeError
    "No implementation of function",  # Numba's typing errors
    "Cannot determine Numba type",
)


@dataclass
class Outcome:
    kind: str  # "ok", "error", "signal", "timeout", "crash" (exited without a report)
    type: str = ""
    mro: tuple = ()
    message: str = ""
    result: str = ""
    returncode: int | None = None
    stderr: str = ""

    def describe(self) -> str:
        if self.kind == "error":
            return f"{self.type}: {self.message}"
        if self.kind == "ok":
            return f"ok: {self.result}"
        return f"{self.kind} (returncode {self.returncode}): {self.stderr[-800:]}"


def run_isolated(code: str, *, timeout: float = 120.0, env: dict | None = None) -> Outcome:
    """Execute `code` (a module body; set `result = ...` to report a value) in a fresh
    interpreter rooted at the repository. Never raises for what the code does."""
    body = textwrap.indent(textwrap.dedent(code).strip("\n") + "\n", "    ")
    script = _RUNNER.format(root=ROOT, body=body)
    child_env = dict(os.environ)
    child_env.update(env or {})
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=child_env,
        )
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return Outcome("timeout", stderr=err)
    marker = "@@OUTCOME@@"
    lines = [line for line in proc.stdout.splitlines() if line.startswith(marker)]
    if proc.returncode < 0:
        return Outcome("signal", returncode=proc.returncode, stderr=proc.stderr)
    if not lines:
        return Outcome("crash", returncode=proc.returncode, stderr=proc.stderr + proc.stdout)
    info = json.loads(lines[-1][len(marker) :])
    if info["outcome"] == "ok":
        return Outcome("ok", result=info["result"], returncode=proc.returncode)
    return Outcome(
        "error",
        type=info["type"],
        mro=tuple(info["mro"]),
        message=info["message"],
        returncode=proc.returncode,
        stderr=info.get("traceback", ""),
    )


def is_clear_error(outcome: Outcome, *mentions: str) -> bool:
    """A ValueError or TypeError (or a subclass) whose message mentions every string in
    `mentions` (the argument's name, say) and none of the internal messages."""
    if outcome.kind != "error":
        return False
    if not ({"ValueError", "TypeError"} & set(outcome.mro)):
        return False
    if any(m in outcome.message for m in INTERNAL_MESSAGES):
        return False
    return all(m.lower() in outcome.message.lower() for m in mentions)


def assert_clear_error(code: str, *mentions: str, timeout: float = 120.0) -> Outcome:
    """Run `code` in its own process and require a clear error that mentions `mentions`."""
    outcome = run_isolated(code, timeout=timeout)
    assert is_clear_error(outcome, *mentions), (
        f"expected a clear ValueError/TypeError mentioning {mentions}, got {outcome.describe()}"
    )
    return outcome


def assert_ok(code: str, *, timeout: float = 120.0) -> Outcome:
    """Run `code` in its own process and require it to finish without an exception."""
    outcome = run_isolated(code, timeout=timeout)
    assert outcome.kind == "ok", f"expected a result, got {outcome.describe()}"
    return outcome


_MANY_RUNNER = """
import json, sys, traceback
sys.path.insert(0, {root!r})
def _report(**kw):
    sys.stdout.write("\\n@@OUTCOME@@" + json.dumps(kw) + "\\n")
    sys.stdout.flush()
{setup}
_CASES = {cases!r}
for _name, _code in _CASES:
    _report(outcome="start", name=_name)
    _ns = dict(globals())
    try:
        exec(_code, _ns)
    except BaseException as _e:
        _report(outcome="error", name=_name, type=type(_e).__name__,
                mro=[c.__name__ for c in type(_e).__mro__], message=str(_e),
                traceback=traceback.format_exc(limit=3))
    else:
        _report(outcome="ok", name=_name, result=repr(_ns.get("result"))[:2000])
"""


def run_many(
    setup: str, cases: dict[str, str], *, timeout: float = 300.0, case_timeout: float = 60.0
) -> dict[str, Outcome]:
    """Run many cases in as few child interpreters as possible: `setup` once per child, then
    each case's code in a fresh copy of the setup's namespace. A case that kills or hangs its
    child is reported as a signal or time-out, and the cases after it run in a new child, so
    one crash costs one restart, never the whole batch."""
    results: dict[str, Outcome] = {}
    pending = list(cases.items())
    marker = "@@OUTCOME@@"
    while pending:
        script = _MANY_RUNNER.format(
            root=ROOT,
            setup=textwrap.dedent(setup),
            cases=[(n, textwrap.dedent(c)) for n, c in pending],
        )
        budget = min(timeout, 30.0 + case_timeout * len(pending))
        try:
            proc = subprocess.run(
                [sys.executable, "-c", script],
                capture_output=True,
                text=True,
                timeout=budget,
                cwd=ROOT,
            )
            stdout, stderr, rc, timed_out = proc.stdout, proc.stderr, proc.returncode, False
        except subprocess.TimeoutExpired as e:
            stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            rc, timed_out = None, True
        started = None
        for line in stdout.splitlines():
            if not line.startswith(marker):
                continue
            info = json.loads(line[len(marker) :])
            if info["outcome"] == "start":
                started = info["name"]
                continue
            started = None
            if info["outcome"] == "ok":
                results[info["name"]] = Outcome("ok", result=info["result"])
            else:
                results[info["name"]] = Outcome(
                    "error",
                    type=info["type"],
                    mro=tuple(info["mro"]),
                    message=info["message"],
                    stderr=info.get("traceback", ""),
                )
        if started is not None:  # this case took the child down (or never finished)
            kind = "timeout" if timed_out else ("signal" if rc is not None and rc < 0 else "crash")
            results[started] = Outcome(kind, returncode=rc, stderr=stderr[-2000:])
        elif len(results) < len(cases) and not any(n in results for n, _ in pending):
            # the setup itself failed: report it against every pending case
            for name, _ in pending:
                results[name] = Outcome("crash", returncode=rc, stderr=(stderr + stdout)[-2000:])
        pending = [(n, c) for n, c in pending if n not in results]
    return results
