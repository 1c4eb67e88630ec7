"""The packages' structure: no import cycles in `fast/` or `reference/`, CPU use never imports
numba-cuda, and the CPU and CUDA launchers that `fast.device.kernels` dispatches to match.

The import graph is read from the source with `ast` (nothing is imported to build it): every
`import` and `from ... import` statement counts, at module level or inside a function, since a
function-level import that closes a cycle is still a cycle (it only fails later, at call time).
`from package import name` is an edge to `package.name` when that is a module, else to `package`.
(Backends chosen by name at run time, `importlib.import_module(f"fast.{device}.{concept}")` in
`fast/device.py`, are not import statements and are not edges.)
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fast", "reference")


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the packages (a package is its __init__.py)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _resolve(node: ast.ImportFrom, current: str, modules: dict[str, Path]) -> str:
    """The absolute module a `from ... import` names (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    base = current.split(".")
    if not _is_package(current, modules):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of the packages it imports (anywhere in its source)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, name, modules)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                # `import fast.cuda.array` names the module itself; keep only our packages'
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_the_imports_it_should():
    """The test can fail: known edges are in the graph, module-level and function-level."""
    graph = import_graph()
    assert "fast.cuda.gemm" in graph["fast.cuda.array"]  # from .gemm import gemm
    assert "fast.validate" in graph["fast.layers"]
    assert "reference.checks" in graph["fast.layers"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_function_level_imports_count(tmp_path, monkeypatch):
    """A cycle closed by an import inside a function is found (so the graph reads those too)."""
    pkg = tmp_path / "fast"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import g\n")
    (pkg / "b.py").write_text("def g():\n    from . import a\n    return a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("fast",))
    assert find_cycle(import_graph()) in (
        ["fast.a", "fast.b", "fast.a"],
        ["fast.b", "fast.a", "fast.b"],
    )


# -- numba-cuda only for GPU users ---------------------------------------------------------------
# Without numba-cuda installed, numba 0.68 still ships its own deprecated `numba.cuda`, so "not
# installed" is simulated by refusing both: any import of numba_cuda or numba.cuda fails. The CPU
# paths must then work, and device="cuda" must say which extra to install.
_BLOCK_CUDA = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoCuda(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "numba_cuda" or name.startswith("numba.cuda"):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoCuda())
    """
)

_CPU_PATHS = textwrap.dedent(
    """
    import numpy as np
    import fast
    from fast import attention, layers, losses, optim
    from fast.activations import gelu, sigmoid

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    y, cache = layers.layer_norm_forward(x, np.ones(4), np.zeros(4))
    layers.layer_norm_backward(np.ones_like(y), cache)
    y, cache = layers.linear_forward(x, rng.standard_normal((5, 4)), np.zeros(5))
    layers.linear_backward(np.ones_like(y), cache)
    y, cache = layers.activation_forward(x, "gelu")
    layers.activation_backward(np.ones_like(y), cache)
    y, cache = layers.dropout_forward(x, 0.5, 1, 2)
    layers.dropout_backward(np.ones_like(y), cache)
    y, cache = layers.embedding_forward(rng.standard_normal((7, 4)), [[1, 2, 6]])
    layers.embedding_backward(np.ones_like(y), cache)
    y, cache = attention.multi_head_attention_forward(x, x, x, 2, causal=True)
    attention.multi_head_attention_backward(np.ones_like(y), cache)
    losses.softmax_cross_entropy(rng.standard_normal((3, 5)), [0, 1, 4])
    losses.mse_loss(rng.standard_normal((3, 5)), np.zeros((3, 5)))
    losses.log_softmax(x)
    gelu(x), sigmoid(x)
    mlp = fast.MLP([4, 3, 2], seed=0)
    opt = optim.AdamW(mlp.parameters(), lr=0.1, weight_decay=0.1)
    mlp.forward(rng.standard_normal((5, 4)), [0, 1, 0, 1, 1])
    mlp.backward()
    optim.clip_grad_norm(mlp.parameters(), 1.0)
    opt.step()
    gpt = fast.GPT(fast.GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    gpt.forward([[1, 2, 3]], [[2, 3, 4]])
    gpt.backward()
    llama = fast.Llama(fast.LlamaConfig(
        vocab_size=11, hidden_size=8, intermediate_size=6, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=8,
    ))
    llama.forward([[1, 2, 3]], [[2, 3, 4]])
    llama.backward()
    llama.generate([[1]], 2)
    loaded = sorted(m for m in sys.modules if m.startswith(("numba.cuda", "numba_cuda")))
    assert not loaded, loaded
    assert "fast.cuda" not in sys.modules
    try:
        fast.MLP([2, 2], device="cuda")
    except ImportError as e:
        print("ERROR:", e)
    """
)


def _run_child(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_cpu_use_never_imports_numba_cuda():
    run = _run_child("import sys\n" + _BLOCK_CUDA + _CPU_PATHS)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert 'pip install "model-archaeology[cuda]"' in run.stdout, run.stdout
    assert "numba-cuda" in run.stdout


def test_the_blocker_blocks():
    """The child's blocker really makes numba-cuda unimportable (so the test above can fail)."""
    run = _run_child(_BLOCK_CUDA + "from numba import cuda\n")
    assert run.returncode != 0
    assert "blocked by the test" in run.stderr


# -- one dispatch ----------------------------------------------------------------------------------
def dispatched_launchers() -> set[tuple[str, str]]:
    """(concept, launcher) for every `kernels("<concept>", ...).<launcher>` and
    `arrays_on(...).<helper>` (concept "array") written in fast/*.py: what dispatch asks for."""
    found = set()
    for path in sorted((ROOT / "fast").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Call)):
                continue
            call = node.value
            name = getattr(call.func, "id", None)
            if name == "kernels" and call.args and isinstance(call.args[0], ast.Constant):
                found.add((call.args[0].value, node.attr))
            elif name == "arrays_on":
                found.add(("array", node.attr))
    return found


def test_cpu_and_cuda_launchers_have_the_same_names_and_signatures():
    """Every launcher the public functions ask `fast.device` for exists, with the same
    parameters, on both devices (a third device would be a third folder passing this test)."""
    wanted = dispatched_launchers()
    assert ("layers", "layer_norm_rows") in wanted and ("array", "ascontiguous") in wanted
    for concept, name in sorted(wanted):
        params = []
        for device in ("cpu", "cuda"):
            module = importlib.import_module(f"fast.{device}.{concept}")
            f = getattr(module, name, None)
            assert inspect.isfunction(f), f"fast.{device}.{concept} has no launcher {name}"
            params.append(list(inspect.signature(f).parameters))
        assert params[0] == params[1], f"{concept}.{name}: cpu{params[0]} but cuda{params[1]}"


def test_kernels_picks_the_inputs_device_and_refuses_a_mix():
    from fast.cuda.array import to_device
    from fast.device import kernels

    x = np.zeros((2, 3))
    assert kernels("layers", x, None).__name__ == "fast.cpu.layers"
    assert kernels("layers", to_device(x)).__name__ == "fast.cuda.layers"
    with pytest.raises(TypeError, match=r"one device, got arrays on 'cpu' and 'cuda'"):
        kernels("layers", x, to_device(x))
