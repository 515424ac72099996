"""secc: compile ONNX CNNs with squeeze-and-excitation blocks and run them.

>>> import numpy as np, secc
>>> secc.compile("model.onnx", "model.bin")            # as `secc model.onnx -o model.bin`
>>> model = secc.Model("model.bin")
>>> model.inputs
[TensorInfo(name='x', shape=('N', 3, 224, 224), dtype='float32')]
>>> y = model.run({"x": np.random.rand(1, 3, 224, 224).astype(np.float32)})

A ``Model`` may be shared by any number of threads: each concurrent ``run`` uses its own
session (arena and outputs), and the GIL is released while the model runs. Inputs that are
C-contiguous float32 arrays are read in place; others are converted first (one copy).
Outputs are new numpy arrays that own their memory (moved from the runtime, not copied).
"""
from __future__ import annotations

import os
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

import numpy as np

from . import _secc
from ._secc import CompileError, InvalidInputError, LoadError, SeccError

__version__ = _secc.__version__
__all__ = [
    "compile",
    "Model",
    "TensorInfo",
    "SeccError",
    "CompileError",
    "LoadError",
    "InvalidInputError",
]

PathLike = Union[str, "os.PathLike[str]"]


class TensorInfo(NamedTuple):
    """A model input or output; a symbolic dimension (the batch) is its name."""

    name: str
    shape: Tuple[Union[int, str], ...]
    dtype: str


def compile(
    model: PathLike,
    output: PathLike,
    *,
    target: str = "cpu",
    cpu: str = "native",
    arch: str = "sm_80",
    fix_dim: Optional[Mapping[str, int]] = None,
    input_shape: Optional[Mapping[str, Tuple[Optional[int], ...]]] = None,
    max_memory: Optional[float] = None,
    fuse: bool = True,
    force: bool = False,
    winograd: bool = True,
) -> Dict[str, int]:
    """Compiles an ONNX model into a secc artifact, as ``secc MODEL -o OUTPUT`` does.

    ``target`` is "cpu" or "cuda"; ``cpu`` a CPU name ("native", "x86-64-v3", "skylake"...);
    ``arch`` the PTX architecture for "cuda"; ``fix_dim`` fixes symbolic input dimensions
    ({"N": 1}); ``input_shape`` fixes inputs' shapes ({"x": (1, 3, 224, 224)}; None keeps a
    dimension symbolic); ``max_memory`` refuses models needing more GiB at batch 1; ``fuse=False``
    compiles without SE fusion; ``force`` replaces a file that is not a secc artifact;
    ``winograd=False`` keeps every 3x3 convolution direct (no Winograd form).
    Returns ``{"bytes": size, "se_blocks": fused}``; raises ``CompileError``.
    """
    return _secc.compile(
        os.fspath(model),
        os.fspath(output),
        target=target,
        cpu=cpu,
        arch=arch,
        fix_dim=dict(fix_dim) if fix_dim is not None else None,
        input_shape=_shapes(input_shape),
        max_memory=max_memory,
        fuse=fuse,
        force=force,
        winograd=winograd,
    )


def _shapes(shapes):
    if shapes is None:
        return None
    out = {}
    for name, dims in shapes.items():
        out[name] = [None if d is None or d == -1 or d == "?" else int(d) for d in dims]
    return out


class Model:
    """A loaded secc artifact. ``threads`` per run (None: one per core this process may use)."""

    def __init__(self, path: PathLike, threads: Optional[int] = None):
        if threads is not None and threads < 0:
            raise ValueError("threads must be >= 0")
        self._native = _secc.Model(os.fspath(path), threads)
        self.inputs: List[TensorInfo] = [TensorInfo(*t) for t in self._native.inputs()]
        self.outputs: List[TensorInfo] = [TensorInfo(*t) for t in self._native.outputs()]

    @property
    def name(self) -> str:
        """The model's (ONNX graph's) name."""
        return self._native.name

    def _arrays(self, inputs: Mapping[str, object]) -> Dict[str, np.ndarray]:
        if not isinstance(inputs, Mapping):
            raise TypeError("inputs must be a dict {input name: array}")
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}

    def run(
        self, inputs: Mapping[str, object], out: Optional[Dict[str, np.ndarray]] = None
    ) -> Dict[str, np.ndarray]:
        """Runs on ``{input name: array}``; returns ``{output name: array}``.

        The outputs are new arrays (copied once from the session's buffers); with ``out``,
        ``{output name: array}`` of float32 C-contiguous writeable arrays of the outputs'
        shapes (e.g. from ``model.output_arrays(batch)``), the kernels write into those
        arrays and nothing is allocated per call; ``out`` is returned.
        """
        if out is not None and not isinstance(out, dict):
            raise TypeError("out must be a dict {output name: array}")
        return self._native.run(self._arrays(inputs), out)

    def output_arrays(self, batch: int = 1) -> Dict[str, np.ndarray]:
        """Empty float32 arrays for every output, symbolic dimensions set to ``batch``
        (for ``run(..., out=...)``; a model whose symbols are not all the batch needs arrays
        shaped by hand)."""
        return {
            o.name: np.empty(tuple(batch if isinstance(d, str) else d for d in o.shape), np.float32)
            for o in self.outputs
        }

    def bench(self, inputs: Mapping[str, object], iters: int = 100, warmup: int = 10) -> Dict[str, float]:
        """Latency of the run alone, measured in the runtime (no Python in the loop)."""
        return self._native.bench(self._arrays(inputs), iters, warmup)

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.name}{list(i.shape)}" for i in self.inputs)
        return f"secc.Model({self.name!r}, inputs: {ins})"
