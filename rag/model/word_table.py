"""The word-embedding table, taken out of the ONNX graph and read from disk row by row.

The table is 250,037 rows of 384 int8 values (96 MB, most of the default model), and a question
uses a dozen of its rows. Inside the graph, ONNX Runtime held all of it in memory (the session
took 226 MB resident; without the table, 93 MB). Here the export writes it to its own file and
the encoder reads the rows a batch needs with `os.pread`: no mapping of the file, whose
fault-around made a memory map resident whole within a hundred questions, and exactly the
arithmetic of the `DequantizeLinear` node it replaces, so the vectors are bit for bit those of
the graph that held the table (tested).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FILE = "word-table.npy"
# The quantised table's name in the graph quantize_dynamic writes, and the node it feeds.
_QUANTIZED = "word_embeddings.weight_quantized"


class WordTableError(ValueError):
    """The export's word table is missing, damaged or not the graph's."""


@dataclass(frozen=True)
class Split:
    """Where the table fed the graph, and how its int8 values are read as floats."""

    input: str  # the graph input the dequantised rows now enter by
    scale: float
    zero_point: int

    def config(self) -> dict[str, Any]:
        return {
            "file": FILE,
            "input": self.input,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }


def split_graph(model: Any) -> tuple[Any, np.ndarray, Split]:
    """Take the quantised word-embedding lookup out of `model` (an onnx ModelProto, changed in
    place): the Gather over the table and its DequantizeLinear go, and the latter's output
    becomes a graph input. Returns the model, the table and how to dequantise it."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    gathers = [n for n in graph.node if n.op_type == "Gather" and n.input[0].endswith(_QUANTIZED)]
    if len(gathers) != 1:
        raise WordTableError(f"expected one quantised word-embedding lookup, found {len(gathers)}")
    gather = gathers[0]
    dequantize = next(
        n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] == gather.output[0]
    )
    table = numpy_helper.to_array(initializers[gather.input[0]])
    scale = numpy_helper.to_array(initializers[dequantize.input[1]])
    zero_point = numpy_helper.to_array(initializers[dequantize.input[2]])
    if scale.size != 1 or zero_point.size != 1 or table.dtype != np.uint8:
        raise WordTableError("the word-embedding table is not quantised per tensor to uint8")
    for node in (gather, dequantize):
        graph.node.remove(node)
    for name in (gather.input[0], dequantize.input[1], dequantize.input[2]):
        graph.initializer.remove(initializers[name])
    graph.input.append(
        helper.make_tensor_value_info(
            dequantize.output[0], TensorProto.FLOAT, ["batch", "tokens", table.shape[1]]
        )
    )
    split = Split(dequantize.output[0], float(scale.reshape(())), int(zero_point.reshape(())))
    return model, table, split


class WordTable:
    """The table's rows, read from its file as a batch needs them."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        path = folder / config["file"]
        try:
            header = np.load(path, mmap_mode="r")  # reads the header only
        except (OSError, ValueError) as exc:
            raise WordTableError(f"{path}: {exc}") from exc
        if header.dtype != np.uint8 or header.ndim != 2:
            raise WordTableError(
                f"{path}: not a uint8 table of rows ({header.dtype}, {header.shape})"
            )
        self.rows, self.width = header.shape
        self._offset = int(header.offset)
        del header
        self.input = str(config["input"])
        self._scale = np.float32(config["scale"])
        self._zero = np.float32(config["zero_point"])
        self._fd = os.open(path, os.O_RDONLY)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """The dequantised rows of `ids` (any shape), float32 with one more axis of `width`."""
        unique, where = np.unique(ids, return_inverse=True)
        if unique.size and (unique[0] < 0 or unique[-1] >= self.rows):
            raise WordTableError(f"token id out of the table's {self.rows} rows")
        # os.pread keeps no file position: threads encoding at once share the descriptor.
        read = b"".join(
            os.pread(self._fd, self.width, self._offset + self.width * int(i)) for i in unique
        )
        if len(read) != self.width * unique.size:
            raise WordTableError("the word table file is shorter than its header says")
        rows = np.frombuffer(read, dtype=np.uint8).reshape(unique.size, self.width)
        # (q - zero point) * scale in float32: DequantizeLinear's arithmetic.
        values = (rows.astype(np.float32) - self._zero) * self._scale
        return values[where.reshape(ids.shape)]
