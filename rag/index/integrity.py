"""What each file of a build should hold, and the checks that it still does.

A build's manifest lists every other file of the build with its size and SHA-256, and carries a
checksum of its own content ("sealed"), so a byte changed anywhere is found. Loading checks the
size of every file and its checksum (RAG_INDEX_CHECKS=full, the default: a damaged index is
never served; 0.3 s for the archive's 178 MB). With RAG_INDEX_CHECKS=quick the bulk arrays
(vectors, FAISS, BM25 postings) are checked by size and array header only, and by checksum at
build time and by `rag index --verify`: at a million passages they are gigabytes, and hashing
them every start-up costs seconds.

SHA-256 over BLAKE2b: 725 MB/s against 390 MB/s on the two-core box (OpenSSL's SHA extensions).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CHECKSUM = "sha256"
MANIFEST = "manifest.json"
# Files read at every load only by size and header: the bulk of a build's bytes.
BULK_NAMES = frozenset({"vectors.npy", "sentence_vectors.npy", "vectors.faiss"})
BULK_FOLDERS = ("lexical/",)  # bm25s's postings arrays (its small JSON files are not bulk)
REBUILD = "rebuild it with `rag index`"


class DamagedFile(Exception):
    """A file of a build is not what the build wrote; the message names it and says what to do."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        # One line whatever the reason: some libraries' messages span several.
        self.reason = " ".join(reason.split())
        super().__init__(f"the index file {path} cannot be read ({self.reason}); {REBUILD}")


@dataclass(frozen=True)
class Checked:
    """What a check covered: files, bytes hashed, and the folder."""

    folder: Path
    files: int
    hashed_bytes: int


def is_bulk(name: str) -> bool:
    """Whether the build file `name` (relative, `/`-separated) is hashed only at build and verify."""
    if name in BULK_NAMES:
        return True
    return name.startswith(BULK_FOLDERS) and name.endswith(".npy")


def file_digest(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, CHECKSUM).hexdigest()


def describe(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file under `folder` but the manifest: relative name -> size and checksum."""
    listing = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name != MANIFEST:
            listing[name] = {"size": path.stat().st_size, CHECKSUM: file_digest(path)}
    return listing


def _canonical(manifest: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def seal(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with a checksum of its own content (keys in any order, any spacing)."""
    return {**manifest, "checksum": hashlib.new(CHECKSUM, _canonical(manifest)).hexdigest()}


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest at `path` parsed, refused as damaged when it is not a JSON object."""
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DamagedFile(path, f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise DamagedFile(path, "not a JSON object")
    return manifest


def check_seal(manifest: Mapping[str, Any], path: Path) -> None:
    """Refuse a manifest whose content is not what its checksum says."""
    if seal(manifest).get("checksum") != manifest.get("checksum"):
        raise DamagedFile(path, "its checksum does not match its content")


def check_files(folder: Path, listing: Any, *, full: bool) -> Checked:
    """Every file `listing` (the manifest's contents) names is there with its size, and the
    small ones (all when `full`) hash right."""
    if not isinstance(listing, Mapping) or not listing:
        raise DamagedFile(folder / MANIFEST, "it lists no files")
    hashed = 0
    for name, expected in listing.items():
        path = folder / name
        if name.startswith("/") or ".." in name.split("/"):
            raise DamagedFile(folder / MANIFEST, f"it names a file outside the build: {name!r}")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise DamagedFile(path, f"{type(exc).__name__}: {exc.strerror}") from exc
        if size != expected.get("size"):
            raise DamagedFile(path, f"{size} bytes, the manifest says {expected.get('size')}")
        if full or not is_bulk(name):
            if file_digest(path) != expected.get(CHECKSUM):
                raise DamagedFile(path, f"its {CHECKSUM} does not match the manifest")
            hashed += size
        elif name.endswith(".npy"):
            check_npy_header(path, size)
    return Checked(folder=folder, files=len(listing), hashed_bytes=hashed)


def check_npy_header(path: Path, size: int) -> None:
    """Refuse a .npy file whose header cannot be read or describes other than `size` bytes:
    a bulk array not hashed at load is still named when its header is cut, zeroed or garbled."""
    from numpy.lib import format as npy

    try:
        with path.open("rb") as stream:
            version = npy.read_magic(stream)
            # np.save writes 1.0, or 2.0 for a header over 64 KiB; 3.0 only for field names
            # outside Latin-1, which no array of a build has.
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"format version {version}")
            read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = read(stream)
            data_at = stream.tell()
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise DamagedFile(path, f"its array header: {type(exc).__name__}: {exc}") from exc
    if dtype.hasobject:
        raise DamagedFile(path, "its array header names Python objects")
    described = data_at + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if described != size:
        raise DamagedFile(path, f"its header describes {described} bytes, the file has {size}")


def load_array(
    path: Path, dtype: type | np.dtype, shape: Iterable[int | None]
) -> np.ndarray:
    """The .npy array at `path`, refused unless it has this dtype and shape (None: any length)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DamagedFile(path, f"{type(exc).__name__}: {exc}") from exc
    check_array(array, path, dtype, shape)
    return array


def check_array(
    array: np.ndarray, path: Path, dtype: type | np.dtype, shape: Iterable[int | None]
) -> None:
    """Refuse `array` (read from `path`) unless it has this dtype and shape (None: any length)."""
    wanted = tuple(shape)
    fits = len(array.shape) == len(wanted) and all(
        w is None or w == s for w, s in zip(wanted, array.shape, strict=True)
    )
    if array.dtype != np.dtype(dtype) or not fits:
        shown = tuple("*" if w is None else w for w in wanted)
        raise DamagedFile(
            path, f"{array.dtype} {array.shape}, expected {np.dtype(dtype)} {shown}"
        )
