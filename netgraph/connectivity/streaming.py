"""Analyse a checkpoint too big to hold: the model lives on the meta device, and each
module's tensors are read from the safetensors file only while its block is being
propagated (DESIGN.md section 5).

Forward flows read the blocks in topological order, backward flows in reverse and
count each layer's nonzero and alive weights on the way (the report reads again only
a layer no single block reads whole); every tensor is dropped after use, so memory
stays near the largest tensor (plus the channel-level vectors) and time near two
reads of the file. Dense products run in float32 (exact for bf16/fp16/fp32 weights;
reachability, hence every count, is exact; flows and path shares carry float32
rounding, about 1e-6 relative).

Examples
--------
>>> import tempfile, torch, netgraph as ng
>>> from safetensors.torch import save_file
>>> from torch import nn
>>> def build():
...     return nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
>>> path = tempfile.mktemp(suffix=".safetensors")
>>> save_file(build().state_dict(), path)
>>> with torch.device("meta"):
...     model = build()
>>> report = analyze_streaming(model, path, input_shape=(6,))
>>> report.parameters, report.disconnected
(32, False)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import mmap
import os
import struct
from collections.abc import Sequence
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from netgraph.connectivity.propagate import flows
from netgraph.connectivity.report import ConnectivityReport, analyze, counting_backward
from netgraph.errors import CheckpointError
from netgraph.graph.repeat import trace_repeated
from netgraph.graph.tracer import trace
from netgraph.parameters import TensorLoader, loading_with

__all__ = ["SafetensorsLoader", "analyze_streaming"]


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


class _MappedTensors:
    """A safetensors file's tensors as views of one private memory map (the format:
    an 8-byte little-endian header size, a JSON header of dtype, shape and byte range
    per tensor, then the data). Reading copies nothing; :meth:`release` drops a tensor's
    pages from the process's resident set (the page cache keeps them), so resident
    memory follows what is loaded, not what has been read."""

    def __init__(self, path: str | os.PathLike) -> None:
        with open(path, "rb") as file:
            size = struct.unpack("<Q", file.read(8))[0]
            self.entries = json.loads(file.read(size))
            self.map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
        self.entries.pop("__metadata__", None)
        self.base = 8 + size

    def get(self, key: str) -> torch.Tensor | None:
        """The tensor as a view, or None for a dtype torch cannot view (read it otherwise)."""
        entry = self.entries[key]
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            return None
        begin, end = entry["data_offsets"]
        if end == begin:
            return torch.empty(entry["shape"], dtype=dtype)
        count = (end - begin) // dtype.itemsize
        return torch.frombuffer(self.map, dtype=dtype, count=count, offset=self.base + begin).reshape(entry["shape"])

    def release(self, key: str) -> None:
        begin, end = self.entries[key]["data_offsets"]
        start = (self.base + begin) // mmap.PAGESIZE * mmap.PAGESIZE  # a neighbour's page just faults back in
        if end > begin:
            self.map.madvise(mmap.MADV_DONTNEED, start, self.base + end - start)

    def close(self) -> None:
        try:
            self.map.close()
        except BufferError:  # a caller still holds a view: the map closes with it
            pass


_TRIM_EVERY = 64 << 20  # bytes of tensors unloaded between two returns of freed memory


def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's ``malloc_trim``, or None elsewhere."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


class SafetensorsLoader(TensorLoader):
    """Fills a meta-device module's own tensors from a safetensors file, and empties them.

    Tensors are views of a memory map of the file (no copy), and their pages leave
    the resident set when unloaded. Tensors are looked up by every name the model
    gives them (tied weights are often stored once, under the first name)."""

    def __init__(self, model: nn.Module, path: str | os.PathLike) -> None:
        self.file = safe_open(str(path), framework="pt")  # validates the file; reads what cannot be viewed
        self.mapped = _MappedTensors(path)
        self.path = path
        # glibc keeps freed temporaries (|W|, its float32 copy) for reuse, and fragments: at
        # 1.1B parameters resident memory grew to 0.6x the file; handing free memory back
        # every 64 MiB of unloaded tensors keeps it near 0.3x (and a 125M file under 1x:
        # every 256 MiB held it at 1.35x, at no measurable time cost).
        self.trim, self.unloaded = _malloc_trim(), 0
        stored = set(self.file.keys())
        names: dict[int, list[str]] = {}
        for name, tensor in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
            names.setdefault(id(tensor), []).append(name)
        self.keys: dict[tuple[int, str], str | None] = {}
        for prefix, module in model.named_modules(remove_duplicate=False):
            for local, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
                if tensor is None:
                    continue
                found = [n for n in names[id(tensor)] if n in stored]
                self.keys[(id(module), local)] = found[0] if found else None

    def __enter__(self) -> SafetensorsLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.mapped.close()
        self.file.__exit__(None, None, None)  # release the file's memory map

    def _entries(self, module: nn.Module) -> list[tuple[str, str | None, bool]]:
        own = [(n, True) for n, p in module._parameters.items() if p is not None]
        own += [(n, False) for n, b in module._buffers.items() if b is not None]
        return [(local, self.keys.get((id(module), local)), is_param) for local, is_param in own]

    def load(self, module: nn.Module) -> None:
        for local, key, is_param in self._entries(module):
            current = module._parameters[local] if is_param else module._buffers[local]
            if key is None:
                if current.is_meta:
                    raise CheckpointError(f"{self.path} has no tensor for {type(module).__name__}.{local}")
                continue
            value = self.mapped.get(key)
            if value is None:
                value = self.file.get_tensor(key)
            if tuple(value.shape) != tuple(current.shape):
                raise CheckpointError(f"{self.path}: {key} has shape {tuple(value.shape)}, the model "
                                      f"{tuple(current.shape)}")
            if is_param:
                module._parameters[local] = nn.Parameter(value, requires_grad=False)
            else:
                module._buffers[local] = value

    def unload(self, module: nn.Module) -> None:
        for local, key, is_param in self._entries(module):
            if key is None:
                continue
            current = module._parameters[local] if is_param else module._buffers[local]
            if current.is_meta:  # a load that failed before reaching this tensor
                continue
            self.mapped.release(key)
            self.unloaded += current.numel() * current.element_size()
            empty = torch.empty_like(current, device="meta")
            if is_param:
                module._parameters[local] = nn.Parameter(empty, requires_grad=False)
            else:
                module._buffers[local] = empty
        if self.trim is not None and self.unloaded >= _TRIM_EVERY:
            self.trim(0)
            self.unloaded = 0


def analyze_streaming(
    model: nn.Module,
    path: str | os.PathLike,
    example_input: Any = None,
    input_shape: Sequence[int] | None = None,
    leaf_modules: Sequence[type | str] = (),
) -> ConnectivityReport:
    """The connectivity report of ``model`` with the weights of the safetensors ``path``,
    never holding more than one module's tensors.

    Parameters
    ----------
    model : nn.Module
        Built on the meta device (``with torch.device("meta"): model = ...``), so it
        costs no memory; it is traced there (a ``transformers`` decoder through three
        of its layers, see :func:`netgraph.graph.repeat.trace_repeated`).
    path : str or PathLike
        A ``.safetensors`` state dict of that model.
    example_input, input_shape, leaf_modules
        As for :func:`netgraph.trace` (a meta-device example input is fine).

    Returns
    -------
    ConnectivityReport
    """
    if leaf_modules:
        graph = trace(model, example_input=example_input, input_shape=input_shape, leaf_modules=leaf_modules)
    else:
        graph = trace_repeated(model, example_input=example_input, input_shape=input_shape)
    counts, count = counting_backward(graph)
    with SafetensorsLoader(model, path) as loader, loading_with(loader), torch.no_grad():
        result = flows(graph, dense_dtype=torch.float32, on_backward=count)
        return analyze(graph, result, counts)
