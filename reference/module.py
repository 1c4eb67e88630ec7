"""Parameters and modules: the bookkeeping every model shares.

A `Parameter` is a tensor the optimizer may change: its `data` (a nested list of floats) and its
`grad` (the same shape, filled by `backward`). A `Module` collects the parameters and sub-modules
assigned to it as attributes, in the order they were assigned, and names them by their attribute
path, so a GPT's parameters come out as `transformer.h.0.attn.c_attn.weight`, just as in the wider
ecosystem. That naming is what lets weights move between backends and into other tools.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from typing import Any

from .checkpoint import CheckpointError, load_safetensors, save_safetensors
from .fileio import atomic_write
from .nested import numel, shape_of, zeros


class Parameter:
    """A trainable tensor: `data` and its gradient `grad`, both nested lists of `shape`."""

    __slots__ = ("data", "grad", "shape")

    def __init__(self, data: Any):
        self.data = data
        self.shape = shape_of(data)
        self.grad = zeros(self.shape)

    def zero_grad(self) -> None:
        self.grad = zeros(self.shape)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape})"


class Module:
    """Base class: registers Parameters and Modules assigned as attributes, in order."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("call Module.__init__() before assigning attributes")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- parameters ---------------------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield (dotted name, Parameter); a parameter shared by two modules is yielded once."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        # Depth-first, in assignment order, without recursion.
        order: list[tuple[str, Parameter]] = []
        while stack:
            path, module = stack.pop()
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    order.append((path + name, p))
            children = [(path + name + ".", m) for name, m in module._modules.items()]
            stack.extend(reversed(children))
        yield from order

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def modules(self) -> Iterator[Module]:
        stack: list[Module] = [self]
        while stack:
            m = stack.pop()
            yield m
            stack.extend(reversed(list(m._modules.values())))

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero (gradients accumulate across backward calls)."""
        for p in self.parameters():
            p.zero_grad()

    def num_parameters(self) -> int:
        return sum(numel(p.shape) for p in self.parameters())

    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout on) or, with mode=False, evaluation mode."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    # -- state ----------------------------------------------------------------------------------
    # A backend with other storage overrides the three hooks below, nothing else.
    _save_tensors = staticmethod(save_safetensors)
    _load_tensors = staticmethod(load_safetensors)

    @staticmethod
    def _copy_tensor(p: Parameter) -> Any:
        return copy.deepcopy(p.data)

    @staticmethod
    def _load_tensor(name: str, p: Parameter, value: Any) -> None:
        """Set p's data from `value` (nested lists, or anything with `tolist()`), checking shape."""
        if hasattr(value, "tolist"):
            value = value.tolist()
        p.data = tensor_of_floats(f"state_dict[{name!r}]", value, p.shape)

    def state_dict(self) -> dict[str, Any]:
        """{name: a copy of the parameter's data}, in `named_parameters` order."""
        return {name: self._copy_tensor(p) for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy tensors into the parameters of the same names, checking every shape.

        Accepts nested lists, or anything with a `tolist()` (a numpy array from `fast`).
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict of name -> tensor, got {type(state).__name__}")
        params = dict(self.named_parameters())
        missing = [n for n in params if n not in state]
        unexpected = [n for n in state if n not in params]
        if strict and (missing or unexpected):
            raise ValueError(
                f"state_dict mismatch: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
            )
        for name, p in params.items():
            if name in state:
                self._load_tensor(name, p, state[name])

    # -- checkpoints ----------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:  # pragma: no cover - overridden by each model
        raise NotImplementedError(f"{type(self).__name__} does not define config_dict()")

    @classmethod
    def from_config_dict(cls, config: dict[str, Any]) -> Module:  # pragma: no cover
        raise NotImplementedError(f"{cls.__name__} does not define from_config_dict()")

    def save_pretrained(self, directory: str | os.PathLike, *, dtype: str = "float32") -> None:
        """Write `config.json` and `model.safetensors` into `directory`, each atomically."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        self._save_tensors(
            self.state_dict(),
            os.path.join(directory, "model.safetensors"),
            dtype=dtype,
            metadata={"format": "pt"},  # transformers refuses safetensors files without it
        )
        atomic_write(
            os.path.join(directory, "config.json"),
            json.dumps(self.config_dict(), indent=2, sort_keys=True) + "\n",
        )

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> Module:
        """Build the model from `config.json` and load `model.safetensors` from `directory`.

        The model comes back in evaluation mode, as in `transformers`: call `.train()` to
        train it (dropout on)."""
        return cls._from_directory(directory, {})

    @classmethod
    def _from_directory(cls, directory: str | os.PathLike, options: dict[str, Any]) -> Module:
        """The model of `directory`'s config, its weights loaded, in evaluation mode."""
        directory = os.fspath(directory)
        for f in ("config.json", "model.safetensors"):
            if not os.path.isfile(os.path.join(directory, f)):
                raise FileNotFoundError(f"{directory!r} has no {f}")
        model = cls._from_config_file(os.path.join(directory, "config.json"), **options)
        model.load_state_dict(cls._load_tensors(os.path.join(directory, "model.safetensors")))
        return model.eval()  # as in transformers: no dropout until the caller asks for .train()

    @classmethod
    def _from_config_file(cls, path: str, **options: Any) -> Module:
        """`cls.from_config_dict` of the JSON object in the file `path` (a fresh model).

        A file that is not a JSON object raises `CheckpointError` naming it; an error the config
        classes raise keeps its type and gains the file's name."""
        config = read_config_json(path)
        try:
            return cls.from_config_dict(config, **options)
        except (ValueError, TypeError) as e:
            e.args = (f"while building {cls.__name__} from {path}: {e}",)
            raise


class ModuleList(Module):
    """An indexable list of modules, named 0, 1, 2, ... (GPT's `h.0`, `h.1`, ...)."""

    def __init__(self, modules: list[Module] | None = None):
        super().__init__()
        for m in modules or []:
            self.append(m)

    def append(self, module: Module) -> None:
        setattr(self, str(len(self._modules)), module)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))


def read_config_json(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in the file `path`; a `CheckpointError` naming the file otherwise."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        config = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path} is not UTF-8 text (byte {e.start}): corrupt?") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {json_error_text(e)}") from None
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path} must hold a JSON object (a model config), got a {type(config).__name__}"
        )
    return config


def json_error_text(e: json.JSONDecodeError) -> str:
    """Where and why JSON text failed to parse: "expecting ',' delimiter at line 3 column 5"."""
    return f"{e.msg[:1].lower()}{e.msg[1:]} at line {e.lineno} column {e.colno} (char {e.pos})"


def tensor_of_floats(name: str, x: Any, shape: tuple[int, ...], at: str = "") -> Any:
    """A fresh nested list of Python floats from `x`, which must have exactly `shape`.

    Every row is checked, not only the first, so a ragged list such as [[1.0, 2.0], [3.0]] is
    refused with a ValueError naming `name` and the row, as is anything that is not a number.
    """
    if not shape:
        if isinstance(x, (int, float)):  # bool is an int, as in numpy
            return float(x)
        raise ValueError(f"{name}{at} must be a number, got {type(x).__name__}")
    if not isinstance(x, (list, tuple)) or len(x) != shape[0]:
        if not at:
            raise ValueError(f"{name} has shape {shape_of(x)}, expected {shape}")
        got = f"length {len(x)}" if isinstance(x, (list, tuple)) else f"a {type(x).__name__}"
        raise ValueError(
            f"{name} is ragged: {name}{at} has {got}, expected a row of length {shape[0]} "
            f"(shape {shape} overall)"
        )
    return [tensor_of_floats(name, v, shape[1:], f"{at}[{i}]") for i, v in enumerate(x)]
