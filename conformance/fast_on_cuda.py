"""`fast` with every model on the GPU: a candidate backend for the conformance suite.

    python -m pytest conformance --backend conformance.fast_on_cuda

The same public names as `fast`; the model classes (and their `from_config_dict` /
`from_pretrained`) build on `device="cuda"` unless told otherwise, so the suite's model tests run
the CUDA kernels against the reference: logits, losses, every gradient, optimizer trajectories
with dropout, generation and decoding, checkpoints. Arrays the models return are DeviceArrays; the
suite's `assert_close` copies them back explicitly. Without a GPU, run it under Numba's simulator
(the root conftest.py turns it on), where it is slow: `tests/cuda/test_conformance_on_cuda.py`
runs the model files with few, tiny examples.
"""

import functools

import fast
from fast import *  # noqa: F403  (the candidate exports exactly fast's names)

__all__ = list(fast.__all__)
NOT_YET_IMPLEMENTED = fast.NOT_YET_IMPLEMENTED
MODELS = ("MLP", "GPT", "Llama", "BERT", "BERTForSequenceClassification", "Transformer", "T5")


def _on_cuda(cls):
    """A subclass of `cls` whose constructors default to device="cuda"."""

    @functools.wraps(cls.__init__)
    def __init__(self, *args, device="cuda", **kwargs):
        cls.__init__(self, *args, device=device, **kwargs)

    @classmethod
    def from_config_dict(sub, config, *args, device="cuda", **kwargs):
        return cls.from_config_dict.__func__(sub, config, *args, device=device, **kwargs)

    @classmethod
    def from_pretrained(sub, directory, *args, device="cuda", **kwargs):
        return cls.from_pretrained.__func__(sub, directory, *args, device=device, **kwargs)

    namespace = {
        "__init__": __init__,
        "from_config_dict": from_config_dict,
        "from_pretrained": from_pretrained,
        "__doc__": cls.__doc__,
        "__module__": __name__,
    }
    return type(cls.__name__, (cls,), namespace)


for _name in MODELS:
    globals()[_name] = _on_cuda(getattr(fast, _name))
