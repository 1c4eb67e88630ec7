"""Offline data: IDX files, the bundled digit sets, the text corpus."""

import gzip
import struct

import pytest

from reference import data as data_module
from reference import (
    load_digits,
    load_mnist_idx,
    load_mnist_sample,
    load_text_corpus,
    read_idx,
    train_test_split,
)


def idx_bytes(type_byte, shape, values, code):
    head = bytes([0, 0, type_byte, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    return head + struct.pack(f">{len(values)}{code}", *values)


def test_read_idx_raw_and_gzip(tmp_path):
    raw = idx_bytes(0x08, (2, 2, 3), list(range(12)), "B")
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    assert read_idx(tmp_path / "a") == ((2, 2, 3), list(range(12)))
    assert read_idx(tmp_path / "a.gz") == ((2, 2, 3), list(range(12)))
    (tmp_path / "f").write_bytes(idx_bytes(0x0D, (3,), [0.5, -1.0, 2.0], "f"))
    assert read_idx(tmp_path / "f") == ((3,), [0.5, -1.0, 2.0])


def test_read_idx_errors(tmp_path):
    raw = idx_bytes(0x08, (2, 3), list(range(6)), "B")
    (tmp_path / "t").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(tmp_path / "t")
    (tmp_path / "m").write_bytes(b"\x01" + raw[1:])
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "m")
    (tmp_path / "g").write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(tmp_path / "g")


def test_load_mnist_idx_pair(tmp_path):
    pixels = [0, 255, 51, 0] * 2  # two 2x2 images
    (tmp_path / "img").write_bytes(idx_bytes(0x08, (2, 2, 2), pixels, "B"))
    (tmp_path / "lbl").write_bytes(idx_bytes(0x08, (2,), [7, 1], "B"))
    x, y = load_mnist_idx(tmp_path / "img", tmp_path / "lbl")
    assert x == [[0.0, 1.0, 0.2, 0.0]] * 2 and y == [7, 1]
    (tmp_path / "lbl3").write_bytes(idx_bytes(0x08, (3,), [7, 1, 2], "B"))
    with pytest.raises(ValueError, match="do not form an MNIST pair"):
        load_mnist_idx(tmp_path / "img", tmp_path / "lbl3")


def test_bundled_8x8_digits():
    x, y = load_digits()
    assert len(x) == len(y) == 1797 and len(x[0]) == 64
    assert sorted(set(y)) == list(range(10))
    assert min(map(min, x)) == 0.0 and max(map(max, x)) == 1.0


def test_mnist_sample_reader(tmp_path):
    row = ",".join(["0"] * 783 + ["255", "7"])
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(gzip.compress((row + "\n" + row + "\n").encode()))
    x, y = load_mnist_sample(str(path))
    assert y == [7, 7] and len(x[0]) == 784 and x[0][-1] == 1.0


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(data_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"model-archaeology\[mnist\]"):
        load_mnist_sample()
    with pytest.raises(ModuleNotFoundError, match=r"model-archaeology\[digits\]"):
        load_digits()


def test_train_test_split():
    x, y = list(range(10)), [i * 10 for i in range(10)]
    xtr, ytr, xte, yte = train_test_split(x, y, test_fraction=0.3, seed=1)
    assert len(xte) == 3 and sorted(xtr + xte) == x
    assert all(b == a * 10 for a, b in zip(xtr + xte, ytr + yte))
    assert train_test_split(x, y, 0.3, seed=1) == (xtr, ytr, xte, yte)
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(x, y, 1.0)


def test_text_corpus(tmp_path):
    text = load_text_corpus(max_bytes=100_000)
    assert 99_000 < len(text.encode()) <= 100_000 and "def " in text
    p = tmp_path / "zh.txt"
    p.write_text("神经网络" * 10, encoding="utf-8")
    assert load_text_corpus(path=p) == "神经网络" * 10
    assert load_text_corpus(max_bytes=7, path=p) == "神经"  # cut at a character boundary
