"""docs/design.md, "Layers and import rules", mechanically: who may import what."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def imported_tops(package):
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield path, node.lineno, a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield path, node.lineno, node.module.split(".")[0]


def test_reference_imports_only_the_standard_library():
    bad = [
        f"{p.relative_to(ROOT)}:{n}: {top}"
        for p, n, top in imported_tops("reference")
        if top not in STDLIB and top != "reference"
    ]
    assert not bad, bad


def test_fast_never_imports_scripts_tests_or_conformance():
    bad = [
        f"{p.relative_to(ROOT)}:{n}: {top}"
        for p, n, top in imported_tops("fast")
        if top in {"scripts", "tests", "conformance"}
    ]
    assert not bad, bad


def test_reference_imports_with_numpy_unavailable():
    code = (
        "import sys; sys.modules['numpy'] = None; import reference; print(len(reference.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_public_names_exist():
    import reference

    missing = [n for n in reference.__all__ if not hasattr(reference, n)]
    assert not missing, missing
