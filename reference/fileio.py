"""Atomic file writes: nothing the user saved is ever lost or half-written.

A save writes to a temporary file in the destination's folder, flushes it to disk, then renames it
over the destination. `os.replace` is atomic on POSIX and Windows, so a reader (or a crash) sees
either the old file or the new one, never a mixture.
"""

from __future__ import annotations

import os
import tempfile


def atomic_write(path: str | os.PathLike, data: bytes | str, *, encoding: str = "utf-8") -> None:
    """Write `data` to `path` atomically (temporary file + fsync + rename).

    >>> atomic_write("/tmp/hello.txt", "hi")  # doctest: +SKIP
    """
    if isinstance(data, str):
        data = data.encode(encoding)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes or str, got {type(data).__name__}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Leave the destination untouched and remove the partial temporary file.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
