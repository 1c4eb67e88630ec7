"""Nested-list helpers and the Module bookkeeping (names, state, checkpoints)."""

import json

import pytest

from reference import Module, ModuleList, Parameter
from reference.nested import check_shape, flatten, shape_of, unflatten, zeros


def test_nested_helpers():
    x = [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]
    assert shape_of(x) == (2, 2, 2) and shape_of(3.0) == () and shape_of([]) == (0,)
    assert flatten(x) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert unflatten(flatten(x), (2, 2, 2)) == x
    assert unflatten([1.0], ()) == 1.0
    assert zeros((2, 3)) == [[0.0] * 3] * 2
    z = zeros((2, 2))
    z[0][0] = 1.0
    assert z[1][0] == 0.0  # rows are distinct lists
    with pytest.raises(ValueError, match="cannot reshape 3 numbers into shape"):
        unflatten([1.0, 2.0, 3.0], (2, 2))
    with pytest.raises(ValueError, match=r"x\[1\] must have shape \(2,\), got \(1,\)"):
        check_shape("x", [[1.0, 2.0], [3.0]], (2, 2))


class Block(Module):
    def __init__(self):
        super().__init__()
        self.weight = Parameter([[1.0, 2.0], [3.0, 4.0]])
        self.bias = Parameter([0.5, 0.5])


class Net(Module):
    def __init__(self):
        super().__init__()
        self.wte = Parameter([[0.0, 1.0]])
        self.h = ModuleList([Block(), Block()])
        self.head = Parameter([1.0])
        self.tied = self.wte  # the same Parameter under a second name

    def config_dict(self):
        return {"model_type": "net"}

    @classmethod
    def from_config_dict(cls, config):
        return cls()


def test_names_follow_attribute_paths_in_order():
    names = [n for n, _ in Net().named_parameters()]
    assert names == ["wte", "head", "h.0.weight", "h.0.bias", "h.1.weight", "h.1.bias"]
    assert Net().num_parameters() == 2 + 1 + 2 * 6  # the tied parameter counts once


def test_state_dict_round_trip_and_errors():
    a, b = Net(), Net()
    a.h[1].bias.data = [9.0, 8.0]
    sd = a.state_dict()
    sd["h.1.bias"][0] = -1.0  # a copy: editing it leaves the model alone
    assert a.h[1].bias.data == [9.0, 8.0]
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict()
    with pytest.raises(ValueError, match=r"missing \['head'\]"):
        b.load_state_dict({k: v for k, v in sd.items() if k != "head"})
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        b.load_state_dict({**sd, "extra": [1.0]})
    with pytest.raises(ValueError, match=r"state_dict\['head'\] has shape \(2,\), expected \(1,\)"):
        b.load_state_dict({**sd, "head": [1.0, 2.0]})
    with pytest.raises(TypeError, match="state must be a dict"):
        b.load_state_dict([1.0])


def test_zero_grad_train_eval():
    n = Net()
    n.h[0].weight.grad[0][0] = 5.0
    n.zero_grad()
    assert n.h[0].weight.grad == [[0.0, 0.0], [0.0, 0.0]]
    n.eval()
    assert not n.training and not n.h[1].training
    n.train()
    assert n.h[1].training


def test_save_and_load_pretrained(tmp_path):
    a = Net()
    a.head.data = [0.125]
    a.save_pretrained(tmp_path / "ckpt", dtype="float64")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text()) == {"model_type": "net"}
    b = Net.from_pretrained(tmp_path / "ckpt")
    assert b.state_dict() == a.state_dict()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        Net.from_pretrained(tmp_path)
