"""docs/design.md, "Layers and import rules", mechanically: who may import what."""

import ast
import importlib
import inspect
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


def reference_aliases(tree):
    """{local name: (module, attribute or None)} for every name a file binds by importing from
    `reference` (a module, or a name defined in one)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "reference":
                    aliases[a.asname or a.name.split(".")[0]] = (
                        a.name if a.asname else "reference",
                        None,
                    )
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "reference":
                for a in node.names:
                    aliases[a.asname or a.name] = (node.module, a.name)
    return aliases


def attribute_chain(node):
    """`a.b.c` -> ("a", ["b", "c"]); None unless the chain starts at a plain name."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    return (node.id, names[::-1]) if isinstance(node, ast.Name) else None


def fast_sources():
    for path in sorted((ROOT / "fast").rglob("*.py")):
        yield path.relative_to(ROOT), ast.parse(path.read_text(encoding="utf-8"))


def private_uses(path, tree):
    """Where a file imports a private name from `reference` or reaches one through an alias."""
    aliases = reference_aliases(tree)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "reference":
                bad += [
                    f"{path}:{node.lineno}: imports {a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                ]
        elif isinstance(node, ast.Attribute):
            chain = attribute_chain(node)
            if chain and chain[0] in aliases and any(n.startswith("_") for n in chain[1]):
                bad.append(f"{path}:{node.lineno}: {chain[0]}.{'.'.join(chain[1])}")
    return sorted(set(bad))


def borrowed_methods(path, tree):
    """Where a class body assigns an attribute of a reference class."""
    aliases = reference_aliases(tree)
    bad = []
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
            chain = attribute_chain(value) if isinstance(value, ast.Attribute) else None
            if not chain or chain[0] not in aliases:
                continue
            module, name = aliases[chain[0]]
            owner = importlib.import_module(module)
            if name is not None:
                owner = getattr(owner, name)
            for attr in chain[1][:-1]:
                owner = getattr(owner, attr)
            if inspect.isclass(owner):
                bad.append(f"{path}:{stmt.lineno}: {cls.name} takes {ast.unparse(value)}")
    return bad


def test_fast_uses_only_public_names_of_reference():
    """`fast` reaches `reference` through public names only. Rule: no file under fast/ may
    `from reference... import _x`, and no attribute chain that starts at a name imported from
    `reference` (a module or anything in it) may contain a part starting with `_`
    (`ref._x`, `ref.Class._method`). What both backends need is public API of a reference module;
    a rename of a private helper there must never change `fast`."""
    bad = [line for path, tree in fast_sources() for line in private_uses(path, tree)]
    assert not bad, "\n".join(bad)


def test_fast_classes_borrow_no_methods_from_reference_classes():
    """A class under fast/ gets behaviour from reference only by inheriting it (a base class or
    a mixin). Rule: no assignment in a class body whose value is an attribute of a reference
    class (`backward = RefClass.backward`, `beam_search = ref_module.Transformer.beam_search`)."""
    bad = [line for path, tree in fast_sources() for line in borrowed_methods(path, tree)]
    assert not bad, "\n".join(bad)


def test_the_two_rules_catch_what_they_forbid():
    source = """
from reference import seq2seq as ref
from reference.gpt import GPT, _check_int
from reference.bert import BERTConfig as Config


class Model:
    config = Config  # a class, not a method of one: allowed
    beam_search = ref.Transformer.beam_search
    forward = GPT.forward

    def check(self, x):
        return ref._helper(x), GPT._private(x), ref.Transformer._method(x)
"""
    tree = ast.parse(source)
    assert private_uses("m.py", tree) == [
        "m.py:13: GPT._private",
        "m.py:13: ref.Transformer._method",
        "m.py:13: ref._helper",
        "m.py:3: imports _check_int",
    ]
    assert borrowed_methods("m.py", tree) == [
        "m.py:9: Model takes ref.Transformer.beam_search",
        "m.py:10: Model takes GPT.forward",
    ]


def test_only_scripts_figures_imports_matplotlib():
    """matplotlib comes with the plots extra: scripts/figures.py alone imports it, so the core
    install runs everything else."""
    bad = [
        f"{p.relative_to(ROOT)}:{n}"
        for package in ("reference", "fast", "conformance", "scripts")
        for p, n, top in imported_tops(package)
        if top == "matplotlib" and p != ROOT / "scripts" / "figures.py"
    ]
    assert not bad, bad
