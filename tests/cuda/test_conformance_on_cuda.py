"""The conformance suite's model files, with the CUDA backend as the candidate.

`conformance/fast_on_cuda.py` is `fast` with every model built on device="cuda"; the files below
check it against the reference exactly as they check the CPU backend (logits, losses, every
gradient, AdamW trajectories with dropout masks bit-identical, generation, greedy and beam
decoding, checkpoints, errors). Under the simulator every GPU thread is a Python thread, so this
runs in its own pytest process with the `cuda` Hypothesis profile (3 tiny examples per
property) and leaves out the two determinism tests that train for many steps
(`tests/cuda/test_models.py` checks determinism on the GPU backend at a smaller size).
On a real GPU, run the whole suite instead: python -m pytest conformance --backend
conformance.fast_on_cuda
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = [
    "test_networks.py",
    "test_gpt.py",
    "test_llama.py",
    "test_bert.py",
    "test_seq2seq.py",
    "test_t5.py",
]


def test_model_conformance_on_the_cuda_backend():
    env = dict(os.environ)
    if env.get("NUMBA_ENABLE_CUDASIM") == "1":
        env.setdefault("HYPOTHESIS_PROFILE", "cuda")
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--backend", "conformance.fast_on_cuda", "-k", "not test_determinism",
            *(os.path.join(ROOT, "conformance", f) for f in FILES),
        ],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and " skipped" not in run.stdout, run.stdout[-2000:]
