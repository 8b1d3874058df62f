"""Vectors kept by what was embedded: a build never embeds the same text twice, and a killed
build resumes where it stopped.

The cache is a folder of batch files, one per model (with its encoder), beside the builds:
`<index_dir>/embeddings/<model>/<batch>.npz`, each holding the SHA-256 keys of the texts
(model id + text) and their vectors. A batch is written to a temporary name, fsynced and
renamed, so a file is whole or absent (a killed build's temporary file is swept by
rag.index.staging); one that cannot be read (damaged on disk) is set aside by name and its
texts embedded again, never trusted.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.index.staging import sync_dir

CACHE_DIR = "embeddings"
KEY_BYTES = 32
# A cache whose unused vectors outnumber the used ones is compacted after a build.
COMPACT_RATIO = 1.0


def embed_key(model_id: str, text: str) -> bytes:
    return hashlib.sha256(f"{model_id}\n{text}".encode()).digest()


class EmbeddingCache:
    """The vectors one model made, by key. Read whole at open: 50k vectors are 75 MB."""

    def __init__(self, index_root: Path, model_id: str, dim: int) -> None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)
        self.folder = Path(index_root) / CACHE_DIR / slug
        self.dim = dim
        self.damaged: list[str] = []  # batch files set aside, by name
        self._vectors: dict[bytes, np.ndarray] = {}
        self._files: list[Path] = []
        if self.folder.is_dir():
            for path in sorted(self.folder.glob("*.npz")):
                self._read(path)

    def __len__(self) -> int:
        return len(self._vectors)

    def __contains__(self, key: bytes) -> bool:
        return key in self._vectors

    def get(self, key: bytes) -> np.ndarray:
        return self._vectors[key]

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Keep a batch, on disk first: a build killed after this call keeps it."""
        if not keys:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}"
        self._write(self.folder / f"{name}.npz", keys, vectors)
        for key, vector in zip(keys, vectors, strict=True):
            self._vectors[key] = vector

    def compact(self, used: set[bytes]) -> None:
        """Drop the vectors no build uses once they outnumber the used ones: one file of the
        used ones is written before the old files are removed, so no step loses a used one."""
        unused = len(self._vectors) - len(used & self._vectors.keys())
        if unused <= COMPACT_RATIO * max(len(used), 1) or not self._files:
            return
        keep = [k for k in self._vectors if k in used]
        old = list(self._files)
        self._files = []
        target = self.folder / f"compacted-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.npz"
        self._write(target, keep, np.stack([self._vectors[k] for k in keep]))
        for path in old:
            path.unlink(missing_ok=True)
        self._vectors = {k: self._vectors[k] for k in keep}

    def _write(self, path: Path, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as out:
            np.savez(
                out,
                keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, KEY_BYTES),
                vectors=np.asarray(vectors, dtype=np.float32),
            )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        sync_dir(self.folder)  # the new name survives a power loss, not only the bytes
        self._files.append(path)

    def _read(self, path: Path) -> None:
        try:
            with np.load(path) as batch:
                keys, vectors = batch["keys"], batch["vectors"]
            if (
                keys.dtype != np.uint8
                or vectors.dtype != np.float32
                or keys.shape[1:] != (KEY_BYTES,)
                or vectors.shape != (len(keys), self.dim)
            ):
                raise ValueError(
                    f"keys {keys.dtype} {keys.shape}, vectors {vectors.dtype} {vectors.shape}"
                )
            # The zip's CRC-32 catches a garbled batch; a vector of NaNs written by a broken
            # encoder is refused too, never served.
            if not np.isfinite(vectors).all():
                raise ValueError("vectors that are not finite")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            aside = path.with_name(path.name + ".damaged")
            os.replace(path, aside)
            self.damaged.append(f"{path.name} ({err})")
            return
        for key, vector in zip(keys, vectors, strict=True):
            self._vectors[key.tobytes()] = vector
        self._files.append(path)
