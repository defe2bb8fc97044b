"""What runs a model on padded batches: torch (CPU or CUDA) or ONNX Runtime (CPU).

Both take the same NumPy batch and return [batch, dim] float32 vectors, so the batching
loop in `base.py` does not know which one it drives. Nothing here imports torch unless
the torch backend or a CUDA device is asked for.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from semsearch.errors import ConfigError, MissingExtraError

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # a container's CPU quota (cgroup v2)
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


class Runner(Protocol):
    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        """One padded batch -> [batch, dim] vectors, not yet normalised: a NumPy array,
        or a torch tensor left on its device until the chunk ends."""
        ...


def available_cores() -> int:
    """The cores this process may use: its affinity mask, capped by a container's CPU
    quota (a 2-CPU container on a 64-core host must not start 64 threads)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota: the affinity mask decides
    return max(1, cores)


def default_threads() -> int:
    """An encoder's threads when none are set: the available cores, or fewer where
    OMP_NUM_THREADS says so (as torch and FAISS already obey it; ONNX Runtime does not
    read it), e.g. several processes sharing a machine."""
    cores = available_cores()
    try:
        asked = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return cores
    return max(1, min(cores, asked))


def _cuda_available() -> bool:
    """Without an NVIDIA driver there is no CUDA, and torch need not be imported to
    learn that (on Linux the driver shows in /proc; elsewhere ask torch)."""
    if sys.platform == "darwin" or (
        sys.platform.startswith("linux") and not NVIDIA_DRIVER.exists()
    ):
        return False
    import torch

    return bool(torch.cuda.is_available())


def pick_device(name: str) -> str:
    """'auto' means CUDA when present, else CPU; anything else must be a torch device."""
    if name == "auto":
        return "cuda" if _cuda_available() else "cpu"
    if name == "cpu":
        return name
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"unknown device {name!r}: use auto, cpu, cuda or cuda:N", setting="device"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but no CUDA GPU is available: use cpu", setting="device"
        )
    return str(device)


def _installed(name: str) -> bool:
    """Whether `name` can be imported, without importing it (onnx alone takes a second)."""
    if name in sys.modules:
        return sys.modules[name] is not None  # None: imports of it are blocked
    return importlib.util.find_spec(name) is not None


def onnx_available() -> bool:
    return _installed("onnxruntime") and _installed("onnx")


def require_onnxruntime(export: bool = False) -> None:
    """Refuse an ONNX backend early, with the install line, where the packages are missing
    (running needs onnxruntime; exporting needs onnx too)."""
    for name in ("onnxruntime", "onnx") if export else ("onnxruntime",):
        if not _installed(name):
            raise MissingExtraError(
                f"the onnx backends need the '{name}' package: pip install onnxruntime onnx, "
                "or use the torch backend"
            )


def resolve_backend(name: str, device: str) -> str:
    """'auto' is ONNX Runtime fp32 on CPU (same vectors, faster) and torch on a GPU."""
    if name == "auto":
        return "onnx" if device == "cpu" and onnx_available() else "torch"
    if name.startswith("onnx") and device != "cpu":
        raise ConfigError(
            f"backend {name!r} runs on the CPU: use device cpu, or backend torch on {device}",
            setting="backend",
        )
    return name


def normalized(vectors: Any) -> Any:
    """Rows scaled to unit length (as torch's F.normalize: norms below 1e-12 count as 1e-12)."""
    if isinstance(vectors, np.ndarray):
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
    import torch

    return torch.nn.functional.normalize(vectors.float(), p=2, dim=1)


def joined(outputs: Sequence[Any]) -> np.ndarray:
    """One array from a chunk's batch outputs (a GPU's copied to the host once)."""
    if outputs and not isinstance(outputs[0], np.ndarray):
        import torch

        return torch.cat(list(outputs)).cpu().numpy()
    return np.concatenate([np.asarray(o) for o in outputs])


def onnx_session(path: Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session on `path` with `threads` intra-op threads (the
    runners use one and run parts of a batch at once instead: see OnnxRunner)."""
    require_onnxruntime()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Spinning idle threads starve the server's event loop on a few shared cores (a
    # question's p50 while a big request ran: 220 ms spinning, 79 ms not).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ConfigError(
            f"ONNX Runtime cannot load {path}: {exc}. Delete that folder to export again"
        ) from None


ROWS_PER_PART = 4
"""OnnxRunner's smallest part of a batch: below it a run is mostly fixed cost (every
weight read once), which fp32 pays at 1.6 ms of a 5 ms run of one 12-token text."""


class OnnxRunner:
    """Padded int64 batches in, float32 vectors out, through one ONNX Runtime session
    with no thread pool of its own: a batch is cut into `threads` parts (of at least
    ROWS_PER_PART rows) that run at once, one part a core.

    One batch on two threads makes both threads meet at every operator; two halves at
    once do not. `semsearch embed` of 4,000 WordNet glosses (MiniLM fp32, 2 cores, load
    average ~9 from other jobs) took 45 and 46 s (17 and 20 s of CPU) this way, against
    60 and 62 s (28 and 29 s of CPU) on one two-threaded spinning session. Each part is
    cut to its own longest row, so parts pad less; a row's vector does not depend on
    its neighbours beyond float noise.
    """

    def __init__(self, path: Path, names: Sequence[str], threads: int) -> None:
        self.session = onnx_session(path, threads=1)
        self.names = list(names)
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _part(self, batch: dict[str, np.ndarray], start: int, end: int) -> np.ndarray:
        width = int(batch["attention_mask"][start:end].sum(axis=1).max())  # right-padded
        feeds = {name: np.ascontiguousarray(batch[name][start:end, :width]) for name in self.names}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="onnx-part")
            return self._pool

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        rows = len(batch["attention_mask"])
        parts = max(1, min(self.threads, rows // ROWS_PER_PART))
        if parts == 1:
            return self._part(batch, 0, rows)
        bounds = np.linspace(0, rows, parts + 1).astype(int).tolist()
        pieces = self._workers().map(self._part, [batch] * parts, bounds[:-1], bounds[1:])
        return np.concatenate(list(pieces))


class RowwiseOnnxRunner:
    """Runs every row of a padded batch alone, without its padding, on `threads`
    single-threaded calls at once: the vector of a text is then the same whatever the
    batch, however it is padded and on however many threads.

    The int8 graph needs this: dynamic quantization scales its activations by the
    minimum and maximum of the whole input tensor, so in a batch every row's vector
    would depend on its neighbours and on the padding. Alone, a row's scales are its
    own. It costs no speed: per text, int8 rows alone take the CPU time of padded
    batches of 32 (which waste work on padding), and two single-threaded calls at once
    kept two busy cores fuller than one two-threaded call on a batch.
    """

    def __init__(self, path: Path, names: Sequence[str], threads: int) -> None:
        self.session = onnx_session(path, threads=1)
        self.names = list(names)
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _row(self, batch: dict[str, np.ndarray], row: int, length: int) -> np.ndarray:
        feeds = {
            name: np.ascontiguousarray(batch[name][row : row + 1, :length]) for name in self.names
        }
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="onnx-row")
            return self._pool

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        lengths = batch["attention_mask"].sum(axis=1).tolist()  # right-padded rows
        if len(lengths) == 1 or self.threads == 1:
            rows = [self._row(batch, i, n) for i, n in enumerate(lengths)]
        else:
            rows = list(
                self._workers().map(self._row, [batch] * len(lengths), range(len(lengths)), lengths)
            )
        return np.concatenate(rows)


class TorchRunner:
    """Runs a sentence module with torch; on CUDA under autocast in the chosen dtype; on
    CUDA through pinned memory with non-blocking copies that overlap the previous batch."""

    def __init__(self, module: Any, names: Sequence[str], device: str, dtype: str) -> None:
        import torch

        self.module = module
        self.names = list(names)
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import torch

        tensors = {key: torch.from_numpy(value) for key, value in batch.items()}
        autocast: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if self.device.type == "cuda":
            tensors = {
                k: v.pin_memory().to(self.device, non_blocking=True) for k, v in tensors.items()
            }
            if self.dtype != torch.float32:
                autocast = torch.autocast("cuda", dtype=self.dtype)
        with torch.inference_mode(), autocast:
            return self.module(*[tensors[name] for name in self.names]).float()
