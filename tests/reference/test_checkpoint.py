"""safetensors written and read in pure Python; read back by the `safetensors` package."""

import json
import os
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from reference import (
    CheckpointError,
    fileio,
    load_safetensors,
    load_safetensors_metadata,
    save_safetensors,
)

TENSORS = {
    "layers.0.weight": [[0.1, -2.5, 3.0], [1e-8, 4.0, -0.0]],
    "layers.0.bias": [1.0, 2.0],
    "scalar": 3.25,
    "cube": [[[1.0, 2.0]], [[3.0, 4.0]]],
}


def test_float64_round_trip_is_exact(tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors(TENSORS, path, dtype="float64", metadata={"format": "pt"})
    assert load_safetensors(path) == TENSORS
    assert load_safetensors_metadata(path) == {"format": "pt"}


def test_float32_round_trip_rounds_to_float32(tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors({"w": [0.1, 1.0 / 3.0]}, path)
    back = load_safetensors(path)["w"]
    assert back == [float(np.float32(0.1)), float(np.float32(1.0 / 3.0))]


def test_safetensors_package_reads_our_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors(TENSORS, path, dtype="float64")
    loaded = load_file(str(path))
    assert set(loaded) == set(TENSORS)
    for name, value in TENSORS.items():
        np.testing.assert_array_equal(loaded[name], np.array(value, dtype=np.float64))
    save_safetensors(TENSORS, path)  # float32
    assert load_file(str(path))["layers.0.weight"].dtype == np.float32


def test_we_read_the_packages_files(tmp_path):
    path = str(tmp_path / "theirs.safetensors")
    arrays = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
        "f16": np.array([0.5, -1.25, 65504.0], dtype=np.float16),
        "i64": np.array([[1, -2], [3, 2**40]], dtype=np.int64),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    save_file(arrays, path)
    ours = load_safetensors(path)
    for name, a in arrays.items():
        assert ours[name] == a.tolist(), name


def test_bfloat16_is_widened(tmp_path):
    # bf16 1.5 is 0x3FC0; -2.0 is 0xC000
    header = json.dumps({"x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<2H", 0x3FC0, 0xC000))
    assert load_safetensors(path) == {"x": [1.5, -2.0]}


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b[:5], "too short"),
        (lambda b: b[:-3], "truncated or corrupt"),
        (lambda b: struct.pack("<Q", 10**9) + b[8:], "header length"),
        (lambda b: b[:8] + b"!" + b[9:], "not valid JSON"),
    ],
)
def test_truncated_or_corrupt_files(tmp_path, mutate, match):
    path = tmp_path / "m.safetensors"
    save_safetensors(TENSORS, path)
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(CheckpointError, match=match):
        load_safetensors(path)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="dtype must be"):
        save_safetensors(TENSORS, tmp_path / "x", dtype="float16")
    with pytest.raises(ValueError, match="not rectangular"):
        save_safetensors({"ragged": [[1.0, 2.0], [3.0]]}, tmp_path / "x")
    with pytest.raises(TypeError, match="metadata"):
        save_safetensors(TENSORS, tmp_path / "x", metadata={"n": 1})


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_safetensors({"w": [1.0]}, path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_safetensors({"w": [2.0]}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]  # no temporary file left behind
