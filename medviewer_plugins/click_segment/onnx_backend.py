"""The click network on ONNX Runtime: what the learned engine runs where the bundle ships
models/model.onnx (training/export_onnx.py) and onnxruntime is installed.

Why: on the CPUs most workstations have, importing torch and building the network took seconds
(6-16 s on a busy machine) and a window 0.2-2.8 s; ONNX Runtime imports in a fraction of a second,
loads the 19 MB file in a tenth of one and runs a 48 x 80 x 80 window in about 0.06 s (the model
card has the figures). It also lets a light install (no torch, no MONAI) run the learned engine.

Only numpy and onnxruntime are imported here, and onnxruntime only when a network is loaded.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np

INPUT, OUTPUT = "image", "logits"  # the names training/export_onnx.py gives


def onnxruntime_installed() -> bool:
    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def providers() -> tuple[str, ...]:
    """ONNX Runtime's execution providers here ('CUDAExecutionProvider' with onnxruntime-gpu and
    a driver); () without onnxruntime."""
    if not onnxruntime_installed():
        return ()
    import onnxruntime as ort

    return tuple(ort.get_available_providers())


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in providers()


class OnnxNetwork:
    """An ONNX Runtime session over the bundle's model.onnx: (N, 3, z, y, x) float32 in, the
    lesion probability (N, z, y, x) out, on the CPU provider, or CUDA's for ``device='cuda'``
    where onnxruntime-gpu has it (else the CPU, as torch's engine would refuse: said in
    ``self.device``)."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = max(1, os.cpu_count() or 1)
        options.log_severity_level = 3  # its warnings (unused initialisers and the like) are for developers
        chosen = ["CPUExecutionProvider"]
        if device.startswith("cuda") and cuda_available():
            chosen.insert(0, "CUDAExecutionProvider")
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=chosen)
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def lesion_probability(self, x: np.ndarray) -> np.ndarray:
        """Softmax's lesion channel of the network's two logits (a sigmoid of their difference)."""
        logits = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(x, dtype=np.float32)})[0]
        diff = np.clip(logits[:, 0] - logits[:, 1], -80.0, 80.0)
        return (1.0 / (1.0 + np.exp(diff))).astype(np.float32)
