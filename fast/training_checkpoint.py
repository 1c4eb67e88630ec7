"""Training checkpoints for numpy models: the reference's code, unchanged.

`reference.training_checkpoint` reads and writes tensors only through the model's storage hooks
(`Module._save_tensors` / `_load_tensors`), which `fast.Module` gives numpy arrays: a float32
model and optimizer are stored as float32 and come back bit for bit. One definition, so a
checkpoint written by either backend loads into the other.
"""

from reference.training_checkpoint import (
    checkpoint_info,
    latest_checkpoint,
    load_training_checkpoint,
    save_training_checkpoint,
)

__all__ = [
    "save_training_checkpoint", "load_training_checkpoint", "latest_checkpoint",
    "checkpoint_info",
]  # fmt: skip
