"""Training checkpoints: everything a run needs to continue after an interruption.

`save_training_checkpoint(out_dir, model, optimizer, trainer_state)` writes one folder,
`out_dir/checkpoints/step-00001200/` (the step is `trainer_state["step"]`):

    model.safetensors      the weights }  exactly what `model.save_pretrained` writes, so
    config.json            the config  }  `from_pretrained` and Hugging Face `transformers` load it
    optimizer.safetensors  every optimizer state tensor as `state.{i}.{key}`, in the optimizer's
                           own dtype (a resume is bit-exact); the param groups, the per-parameter
                           numbers such as `step`, and the optimizer's class name are JSON text in
                           the file's `__metadata__`
    trainer_state.json     the caller's dict, and under the one key "_checkpoint" what this module
                           adds: the format version, the library version, the model's class and
                           random-generator counters (`dropout_step`, `dropout_seed`, BERT's
                           `step`), and the size and sha256 of every other file of the set
    ...                    whatever `write_extra(folder)` adds (a tokenizer, say)

Nothing the user saved is ever half-written. The set is written into a temporary folder inside
`out_dir/checkpoints/` (its name starts with "."), every file and folder is flushed to disk, and
only then is the folder renamed to `step-N`: a rename is atomic, so a `step-N` folder is always
complete, whenever the process dies. Saving a step that exists renames the old folder aside first
(`.old-step-N-...`) and deletes it once the new one is in place; if the process dies between the
two renames, `latest_checkpoint` still finds the old one and the next save puts it back. Old
checkpoints are renamed aside before they are deleted, for the same reason. One process writes to
an `out_dir` at a time.

`load_training_checkpoint` checks every file against its sha256 before it loads anything (a
truncated or corrupt file raises `CheckpointError` naming it), checks that the checkpoint holds
the same model (class and config) as the model given, then restores the weights, the optimizer
state and the counters, and returns the caller's dict. A checkpoint written by one backend loads
into another: the files are the same, only the storage (`Module._save_tensors` /
`_load_tensors`: nested lists here, numpy arrays in `fast`) differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from importlib import metadata as _metadata
from typing import Any

from .checkpoint import CheckpointError, load_safetensors_metadata
from .checks import is_int
from .module import Module, json_error_text, read_config_json

FORMAT_VERSION = 1
BOOKKEEPING = "_checkpoint"  # the key of this module's own entries in trainer_state.json
COUNTERS = ("dropout_seed", "dropout_step", "step")  # model attributes that pick dropout masks
MODEL_FILE, CONFIG_FILE = "model.safetensors", "config.json"
OPTIMIZER_FILE, STATE_FILE = "optimizer.safetensors", "trainer_state.json"
_STEP = re.compile(r"step-(\d+)")
_OPTIMIZER_TENSOR = re.compile(r"state\.(\d+)\.(.+)")
_ASIDE = re.compile(r"\.old-(step-(\d+))-[0-9a-f]+")  # a published checkpoint being replaced


# -- saving ----------------------------------------------------------------------------------------
def save_training_checkpoint(
    out_dir: str | os.PathLike,
    model: Module,
    optimizer: Any,
    trainer_state: dict[str, Any],
    *,
    keep: int = 2,
    write_extra: Any = None,
) -> str:
    """Write model, optimizer and trainer state as one checkpoint; returns its folder.

    The folder is `out_dir/checkpoints/step-{step:08d}` with step = `trainer_state["step"]` (an
    int >= 0); an existing folder of that step is replaced. `optimizer` is anything with
    PyTorch's `state_dict()` (or None: no optimizer state). `write_extra(folder)` may add files
    to the set before it is published. Afterwards only the newest `keep` checkpoints (by step)
    are kept, and always the one just written.
    """
    out_dir = _check_path("out_dir", out_dir)
    _check_model_and_optimizer(model, optimizer, "state_dict")
    step = _check_trainer_state(trainer_state)
    if not is_int(keep) or keep < 1:
        raise ValueError(f"keep must be an int >= 1 (checkpoints to keep), got {keep!r}")
    if write_extra is not None and not callable(write_extra):
        raise TypeError(f"write_extra must be callable (or None), got {type(write_extra).__name__}")
    optimizer_state = None if optimizer is None else _check_optimizer_state(optimizer.state_dict())

    root = os.path.join(out_dir, "checkpoints")
    os.makedirs(root, exist_ok=True)
    _recover(root)
    name = f"step-{step:08d}"
    tmp = os.path.join(root, f".tmp-{name}-{os.urandom(6).hex()}")
    os.mkdir(tmp)  # not tempfile.mkdtemp: the published folder keeps the usual permissions
    try:
        model.save_pretrained(tmp, dtype=_storage_dtype(p.data for p in model.parameters()))
        if optimizer_state is not None:
            _save_optimizer(model, type(optimizer).__name__, optimizer_state, tmp)
        if write_extra is not None:
            write_extra(tmp)
        state = dict(trainer_state)
        state[BOOKKEEPING] = {
            "format_version": FORMAT_VERSION,
            "library_version": _library_version(),
            "model_class": type(model).__name__,
            "model_counters": {
                c: getattr(model, c) for c in COUNTERS if is_int(getattr(model, c, None))
            },
            "optimizer_class": None if optimizer is None else type(optimizer).__name__,
            "files": {rel: _file_record(os.path.join(tmp, rel)) for rel in _files(tmp)},
        }
        state[BOOKKEEPING]["sha256"] = _state_digest(state)
        with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
            f.write(json.dumps(state, indent=2, sort_keys=True) + "\n")
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = os.path.join(root, name)
    aside = None
    if os.path.exists(final):  # replace it: move the old one aside, publish, then delete it
        aside = os.path.join(root, f".old-{name}-{os.urandom(6).hex()}")
        os.rename(final, aside)
    os.rename(tmp, final)
    _fsync_dir(root)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    _prune(root, keep, final)
    return final


def _save_optimizer(model: Module, class_name: str, state: dict, folder: str) -> None:
    """optimizer.safetensors: tensors as `state.{i}.{key}`, everything else as JSON metadata."""
    tensors: dict[str, Any] = {}
    numbers: dict[str, dict[str, Any]] = {}  # per parameter index, the non-tensor entries
    for i, entry in state["state"].items():
        numbers[str(i)] = {}
        for key, value in entry.items():
            if _is_tensor(value):
                tensors[f"state.{i}.{key}"] = value
            else:
                numbers[str(i)][key] = value.item() if hasattr(value, "item") else value
    try:
        metadata = {
            "format_version": str(FORMAT_VERSION),
            "optimizer_class": class_name,
            "param_groups": json.dumps(state["param_groups"], default=_item),
            "state_numbers": json.dumps(numbers, default=_item),
        }
    except (TypeError, ValueError) as e:
        raise TypeError(f"optimizer.state_dict() holds a value JSON cannot store: {e}") from None
    path = os.path.join(folder, OPTIMIZER_FILE)
    model._save_tensors(tensors, path, dtype=_storage_dtype(tensors.values()), metadata=metadata)


def _load_optimizer(model: Module, path: str) -> tuple[str, dict[str, Any]]:
    """(the optimizer's class name, its state_dict) from optimizer.safetensors."""
    meta = load_safetensors_metadata(path)
    try:
        groups = json.loads(meta["param_groups"])
        numbers = json.loads(meta["state_numbers"])
        class_name = meta["optimizer_class"]
        if not (isinstance(groups, list) and all(isinstance(g, dict) for g in groups)):
            raise ValueError("param_groups is not a list of objects")
        if not (isinstance(numbers, dict) and all(isinstance(e, dict) for e in numbers.values())):
            raise ValueError("state_numbers is not an object of objects")
        state = {int(i): dict(entry) for i, entry in numbers.items()}
    except (KeyError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: metadata is not an optimizer state's ({e})") from None
    for name, tensor in model._load_tensors(path).items():
        m = _OPTIMIZER_TENSOR.fullmatch(name)
        if m is None:
            raise CheckpointError(f"{path}: tensor {name!r} is not named state.<index>.<key>")
        state.setdefault(int(m.group(1)), {})[m.group(2)] = tensor
    for group in groups:  # JSON has no tuples; PyTorch keeps e.g. betas as one
        for key, value in group.items():
            if key != "params" and isinstance(value, list):
                group[key] = tuple(value)
    return class_name, {"state": dict(sorted(state.items())), "param_groups": groups}


# -- finding and loading ---------------------------------------------------------------------------
def latest_checkpoint(out_dir: str | os.PathLike) -> str | None:
    """The newest complete checkpoint under `out_dir/checkpoints/` (highest step), or None."""
    out_dir = _check_path("out_dir", out_dir)
    root = os.path.join(out_dir, "checkpoints")
    if not os.path.isdir(root):
        return None
    found = _published(root)
    steps = {step for step, _ in found}
    for entry in os.listdir(root):  # a save that died while replacing its step's folder
        m = _ASIDE.fullmatch(entry)
        path = os.path.join(root, entry)
        if m and int(m.group(2)) not in steps and _is_complete(path):
            found.append((int(m.group(2)), path))
    return max(found)[1] if found else None


def load_training_checkpoint(
    path: str | os.PathLike, model: Module, optimizer: Any = None
) -> dict[str, Any]:
    """Restore `model` (and `optimizer`) from a checkpoint; returns the caller's trainer_state.

    `path` is a checkpoint folder, or an out_dir (then its latest checkpoint). Every file is
    checked against its recorded size and sha256 before anything is loaded. The returned dict
    is the one given to `save_training_checkpoint` (after a JSON round trip), without this
    module's "_checkpoint" entry; read that with `checkpoint_info(folder)`.
    """
    path = _check_path("path", path)
    _check_model_and_optimizer(model, optimizer, "load_state_dict")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no training checkpoint at {path!r}: no such folder")
    folder = path if os.path.isfile(os.path.join(path, STATE_FILE)) else latest_checkpoint(path)
    if folder is None:
        raise FileNotFoundError(
            f"{path!r} holds no training checkpoint: neither a {STATE_FILE} nor a complete "
            "checkpoints/step-* folder"
        )
    state = _verified_state(folder)
    book = state.pop(BOOKKEEPING)
    _check_same_model(folder, book, model)
    optimizer_state = None
    if optimizer is not None:
        if OPTIMIZER_FILE not in book["files"]:
            raise ValueError(f"checkpoint {folder} holds no optimizer state (saved without one)")
        saved_class, optimizer_state = _load_optimizer(model, os.path.join(folder, OPTIMIZER_FILE))
        if saved_class != type(optimizer).__name__:
            raise ValueError(
                f"checkpoint {folder} holds a {saved_class} optimizer's state, "
                f"this optimizer is a {type(optimizer).__name__}"
            )
    weights = model._load_tensors(os.path.join(folder, MODEL_FILE))
    if optimizer is not None:
        optimizer.load_state_dict(optimizer_state)
    model.load_state_dict(weights)
    for name, value in book.get("model_counters", {}).items():
        if name in COUNTERS and is_int(value):
            setattr(model, name, value)
    return state


def checkpoint_info(folder: str | os.PathLike) -> dict[str, Any]:
    """The bookkeeping of a checkpoint folder (versions, model class, counters, file hashes),
    after the same integrity checks as a load."""
    folder = _check_path("folder", folder)
    if not os.path.isfile(os.path.join(folder, STATE_FILE)):
        raise FileNotFoundError(f"{folder!r} is not a training checkpoint: it has no {STATE_FILE}")
    return _verified_state(folder)[BOOKKEEPING]


def _verified_state(folder: str) -> dict[str, Any]:
    """trainer_state.json, once it and every file it lists match their sha256."""
    path = os.path.join(folder, STATE_FILE)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        state = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path} is corrupt (not UTF-8 at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(
            f"{path} is corrupt or truncated (not valid JSON: {json_error_text(e)})"
        ) from None
    book = state.get(BOOKKEEPING) if isinstance(state, dict) else None
    if not isinstance(book, dict) or not isinstance(book.get("files"), dict):
        raise CheckpointError(
            f"{path} is corrupt or truncated: it lacks the {BOOKKEEPING!r} entry of a checkpoint"
        )
    if book.get("sha256") != _state_digest(state):
        raise CheckpointError(f"{path} is corrupt: its contents do not match its recorded sha256")
    version = book.get("format_version")
    if not is_int(version) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version!r} is newer than this library reads "
            f"(up to {FORMAT_VERSION}); upgrade the library"
        )
    files = book["files"]
    for required in (MODEL_FILE, CONFIG_FILE):
        if required not in files:
            raise CheckpointError(f"{path} lists no {required}: not a complete checkpoint")
    for rel, record in files.items():
        parts = rel.split("/")
        if os.path.isabs(rel) or ".." in parts:
            raise CheckpointError(f"{path} lists a file outside its folder: {rel!r}")
        file = os.path.join(folder, *parts)
        if not os.path.isfile(file):
            raise CheckpointError(f"{file} is missing from checkpoint {folder}")
        size = os.path.getsize(file)
        if size != record["bytes"]:
            raise CheckpointError(
                f"{file} is truncated or corrupt: {size} bytes, {record['bytes']} when saved"
            )
        if _file_record(file)["sha256"] != record["sha256"]:
            raise CheckpointError(
                f"{file} is corrupt or truncated: its sha256 differs from the one recorded "
                "when it was saved"
            )
    return state


def _check_same_model(folder: str, book: dict[str, Any], model: Module) -> None:
    """A ValueError unless the checkpoint holds a model of `model`'s class and config."""
    saved_class, ours = book.get("model_class"), type(model).__name__
    if saved_class != ours:
        raise ValueError(f"checkpoint {folder} holds a {saved_class}, this model is a {ours}")
    saved = read_config_json(os.path.join(folder, CONFIG_FILE))
    current = json.loads(json.dumps(model.config_dict()))  # tuples become lists, as in the file
    keys = sorted(set(saved) | set(current))
    differ = [k for k in keys if saved.get(k, _ABSENT) != current.get(k, _ABSENT)]
    if differ:

        def show(config: dict[str, Any]) -> str:
            return ", ".join(f"{k}={config[k]!r}" if k in config else f"no {k}" for k in differ[:4])

        raise ValueError(
            f"checkpoint {folder} is a {saved_class} with {show(saved)}, this model has "
            f"{show(current)} (differing config keys: {differ})"
        )


# -- helpers ---------------------------------------------------------------------------------------
_ABSENT = object()


def _is_tensor(x: Any) -> bool:
    """Nested lists or an array with at least one dimension (a 0-d array is a number)."""
    return isinstance(x, (list, tuple)) or len(getattr(x, "shape", ())) > 0


def _item(x: Any) -> Any:
    """JSON's fallback for a numpy scalar: its Python number."""
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _check_path(name: str, path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"{name} must be a text path, got {type(path).__name__}")
    return path


def _check_model_and_optimizer(model: Any, optimizer: Any, method: str) -> None:
    """TypeError unless `model` is a Module and `optimizer` None or has the `method` it needs."""
    if not isinstance(model, Module):
        raise TypeError(f"model must be a Module (a GPT, BERT, ...), got {type(model).__name__}")
    if optimizer is not None and not callable(getattr(optimizer, method, None)):
        raise TypeError(
            f"optimizer must have a {method}() method (or be None), got {type(optimizer).__name__}"
        )


def _check_trainer_state(state: Any) -> int:
    """The step of a valid trainer_state; a clear error otherwise."""
    if not isinstance(state, dict):
        raise TypeError(f"trainer_state must be a dict, got {type(state).__name__}")
    if BOOKKEEPING in state:
        raise ValueError(f"trainer_state must not hold the key {BOOKKEEPING!r} (this module's)")
    bad = [k for k in state if not isinstance(k, str)]
    if bad:
        raise TypeError(f"trainer_state keys must be str (JSON object keys), got {bad[0]!r}")
    if "step" not in state:
        raise ValueError("trainer_state must hold 'step' (an int >= 0: the checkpoint's name)")
    step = state["step"]
    if not is_int(step):
        raise TypeError(f"trainer_state['step'] must be an int >= 0, got {type(step).__name__}")
    if step < 0:
        raise ValueError(f"trainer_state['step'] must be an int >= 0, got {step}")
    try:
        json.dumps(state, sort_keys=True)  # as the checksum will
    except (TypeError, ValueError) as e:
        raise TypeError(f"trainer_state must be JSON serialisable: {e}") from None
    return step


def _check_optimizer_state(state: Any) -> dict[str, Any]:
    """PyTorch's layout: {"state": {index: {key: value}}, "param_groups": [dict, ...]}."""
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("state"), dict)
        or not isinstance(state.get("param_groups"), list)
        or not all(is_int(i) and isinstance(e, dict) for i, e in state["state"].items())
        or not all(isinstance(g, dict) for g in state["param_groups"])
    ):
        raise TypeError(
            "optimizer.state_dict() must return PyTorch's layout {'state': {int: {key: value}}, "
            f"'param_groups': [dict, ...]}}, got {str(state)[:80]}"
        )
    return state


def _storage_dtype(values: Any) -> str:
    """float32 when every tensor is float32 (fast's default), else float64 (exact for Python
    floats, and for a mixture)."""
    dtypes = {str(getattr(v, "dtype", "float64")) for v in values}
    return "float32" if dtypes == {"float32"} else "float64"


def _library_version() -> str:
    try:
        return _metadata.version("model-archaeology")
    except _metadata.PackageNotFoundError:
        return "unknown"


def _file_record(path: str) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _files(folder: str) -> list[str]:
    """Every file under `folder` but trainer_state.json, as sorted "/"-separated paths."""
    out = []
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), folder).replace(os.sep, "/")
            if rel != STATE_FILE:
                out.append(rel)
    return sorted(out)


def _state_digest(state: dict[str, Any]) -> str:
    """sha256 of the state in a canonical JSON form, without the digest itself."""
    state = dict(state)
    book = dict(state[BOOKKEEPING])
    book.pop("sha256", None)
    state[BOOKKEEPING] = book
    text = json.dumps(state, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fsync_dir(path: str) -> None:
    """Flush a folder's entries (the renames in it) to disk, where the system allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: str) -> None:
    for dirpath, _, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(dirpath)


def _is_complete(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, STATE_FILE))


def _published(root: str) -> list[tuple[int, str]]:
    """(step, path) of every complete `step-N` folder."""
    out = []
    for entry in os.listdir(root):
        m = _STEP.fullmatch(entry)
        if m and _is_complete(os.path.join(root, entry)):
            out.append((int(m.group(1)), os.path.join(root, entry)))
    return out


def _recover(root: str) -> None:
    """Put back a checkpoint a killed save had moved aside to replace it; drop stale asides."""
    for entry in os.listdir(root):
        m = _ASIDE.fullmatch(entry)
        if not m:
            continue
        path, final = os.path.join(root, entry), os.path.join(root, m.group(1))
        if not os.path.exists(final) and _is_complete(path):
            os.rename(path, final)
            _fsync_dir(root)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _prune(root: str, keep: int, just_written: str) -> None:
    """Keep the newest `keep` checkpoints (and `just_written`); delete the rest and the
    temporary folders of saves that died. A checkpoint is renamed away before its files go."""
    found = sorted(_published(root), reverse=True)
    kept = {path for _, path in found[:keep]} | {just_written}
    for _, path in found:
        if path not in kept:
            doomed = os.path.join(root, f".del-{os.path.basename(path)}-{os.urandom(6).hex()}")
            os.rename(path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
    for entry in os.listdir(root):
        if entry.startswith((".tmp-step-", ".del-step-")):
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)


__all__ = [
    "save_training_checkpoint", "load_training_checkpoint", "latest_checkpoint",
    "checkpoint_info",
]  # fmt: skip
