"""Keras' backends: which engine a stage trains on (TensorFlow, JAX or PyTorch), deterministic, and on what device.

Keras picks its backend once, at its first import, from KERAS_BACKEND. `select` sets it from `train.backend`
before that import, so params.yaml (and so DVC) says which engine made a model, whatever the shell exported.
Each backend is made deterministic its own way: TensorFlow's op determinism, PyTorch's deterministic algorithms
(and cuBLAS' fixed workspace on a GPU; an op with no deterministic CUDA kernel warns), XLA's deterministic GPU ops
for JAX (on the CPU it is deterministic as it is). A saved `.keras` file holds no backend: a model trained on any
of them loads on any other without its optimizer (`mnist predict` uses TensorFlow and loads no optimizer).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import sys
from typing import Any

from mnist_pipeline.errors import PipelineError

BACKENDS = ("tensorflow", "jax", "torch")
# the distribution whose version the record gives, per backend
DISTRIBUTIONS = {"tensorflow": ("tensorflow-cpu", "tensorflow"), "jax": ("jaxlib", "jax"), "torch": ("torch",)}
SET_UP = "bash scripts/setup-backends.sh makes .venv-backends with JAX and PyTorch; docs/gpu.md for a GPU"


def select(name: str, setting: str = "train.backend") -> None:
    """Make `name` Keras' backend in this process, deterministic. One line if it is not installed, or if Keras
    was already imported with another backend (a backend cannot change once Keras is loaded)."""
    if name not in BACKENDS:
        raise PipelineError(f"backend {name!r} is not one of {', '.join(BACKENDS)}")
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != name:
            raise PipelineError(f"backend {name}: Keras is already loaded with {current} in this process")
        return
    check_installed(name, setting)
    os.environ["KERAS_BACKEND"] = name
    if name == "tensorflow":
        from mnist_pipeline import import_tensorflow

        import_tensorflow()
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif name == "jax" and "xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_gpu_deterministic_ops=true".strip()
    elif name == "torch":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS needs it, before CUDA
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)  # an op with no deterministic kernel warns
    import keras

    if keras.backend.backend() != name:  # e.g. a keras.json that pins another: say so rather than mislabel
        raise PipelineError(f"backend {name}: Keras loaded {keras.backend.backend()} instead")


def check_installed(name: str, setting: str = "train.backend") -> None:
    """One line when this interpreter lacks the backend's package (found without importing it)."""
    if importlib.util.find_spec(name) is None:
        raise PipelineError(f"{setting} {name}: {name} is not installed in {sys.prefix} ({SET_UP})")


def version(name: str) -> str:
    for distribution in DISTRIBUTIONS[name]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(distribution)
    return "unknown"


def gpus() -> list[str]:
    """The GPUs the loaded backend sees, by name (empty on a CPU-only machine)."""
    import keras

    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return [device.name for device in tf.config.list_logical_devices("GPU")]
    if name == "jax":
        import jax

        return [f"{device.platform}:{device.id} {device.device_kind}" for device in jax.devices()
                if device.platform == "gpu"]
    import torch

    return [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]


def describe(precision: str) -> dict[str, Any]:
    """What the train record says of the engine: backend, its version, Keras', the device, the dtype policy."""
    import keras

    name = keras.backend.backend()
    visible = gpus()
    device = f"GPU ({visible[0].split(' ', 1)[-1]})" if visible else "CPU"
    return {"name": name, "version": version(name), "keras": keras.__version__, "device": device,
            "gpus": len(visible), "precision": precision}


class OneDevice:
    """The strategy of a backend that trains on one device (JAX and PyTorch here): its scope does nothing."""

    def scope(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()
