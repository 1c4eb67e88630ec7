"""The contract between forward and backward: every public `*_forward` op of both backends returns
a cache of the same `typing.NamedTuple` class, defined once in `reference`, and its backward
accepts it."""

import numpy as np
import pytest

import fast
import reference


def _inputs():
    """Small arguments for each public forward op (nested lists, which both backends take)."""
    rng = np.random.default_rng(0)

    def t(*shape):
        return rng.standard_normal(shape).tolist()

    x = t(2, 3, 4)
    return {
        "embedding_forward": (t(5, 4), [[0, 4, 1], [2, 2, 3]]),
        "position_embedding_forward": (t(6, 4), 2, 3, 1),
        "linear_forward": (x, t(5, 4), t(5)),
        "layer_norm_forward": (x, t(4), t(4)),
        "activation_forward": (x, "gelu"),
        "dropout_forward": (x, 0.5, 1, 2),
        "residual_forward": (x, t(2, 3, 4)),
        "cross_entropy_forward": (x, [[0, 1, 3], [2, 2, 1]]),
        "attention_forward": (t(2, 2, 3, 2), t(2, 2, 4, 2), t(2, 2, 4, 2), True, None, 0.3, 1, 2),
        "multi_head_attention_forward": (x, x, x, 2, True),
        "rms_norm_forward": (x, t(4), 1e-6),
        "rope_forward": (x, 2, 3, 500.0),
        "swiglu_forward": (x, t(2, 3, 4)),
        "grouped_query_attention_forward": (x, t(2, 5, 2), t(2, 5, 2), 2, 1, True, None, 0.3, 1, 2),
        "t5_layer_norm_forward": (x, t(4), 1e-6),
        "relative_position_bias_forward": (t(4, 2), 3, 5, False, 6),
        "t5_attention_forward": (
            t(2, 2, 3, 2),
            t(2, 2, 4, 2),
            t(2, 2, 4, 2),
            t(2, 3, 4),
            True,
            [[0, 0, 0, 1]] * 2,
            0.3,
        ),
        "gated_gelu_forward": (x, t(2, 3, 4)),
    }


def _forward_ops(package):
    return sorted(n for n in package.__all__ if n.endswith("_forward"))


def test_every_forward_op_has_a_case():
    assert _forward_ops(reference) == _forward_ops(fast) == sorted(_inputs())


@pytest.mark.parametrize("name", sorted(_inputs()))
def test_both_backends_return_the_same_named_cache(name):
    args = _inputs()[name]
    out, rcache = getattr(reference, name)(*args)
    fout, fcache = getattr(fast, name)(*args)
    cls = type(rcache)
    assert issubclass(cls, tuple) and hasattr(cls, "_fields"), f"{name}: not a NamedTuple"
    assert cls.__module__.startswith("reference."), f"{name}: {cls} is not defined in reference"
    assert type(fcache) is cls, f"{name}: fast returns {type(fcache)}, the reference {cls}"
    backward = name.replace("_forward", "_backward")
    dout = 1.0 if name == "cross_entropy_forward" else np.ones(np.shape(fout)).tolist()
    getattr(reference, backward)(dout, rcache)
    getattr(fast, backward)(np.asarray(dout), fcache)
