"""Where a build is written before it becomes current: made durable, and swept away when the
process that was writing it has died.

Who owns a staging folder is told by a lock, not by a pid that may have been reused: every
build holds a shared `flock` on `<index_dir>/.build.lock` from start to end, and the kernel drops
it the moment the process dies, however it dies. Sweeping takes the same lock exclusively and
without waiting, so it happens only when no build is running, and then every staging folder and
temporary file in the index folder is a dead build's. A build sweeps before it starts and after
it ends; `rag serve` (and every other opening of the index) sweeps at start.

Durability: a build's files are fsynced, then their folders, before the build is renamed into
place; the rename and the swap of `current` are each followed by an fsync of the folder that
holds them, so after a power loss a build that looks complete is complete.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

LOCK = ".build.lock"
# What a killed build leaves behind, relative to the index folder.
ABANDONED = (
    "builds/.*.partial",  # a build's staging folder
    "builds/.*.removing",  # an old build on its way out
    ".current-*",  # the new `current` link before it replaced the old one
    "embeddings/*/.*.tmp",  # a batch of the embedding cache before its rename
)


def sync_dir(folder: Path) -> None:
    """fsync a folder, so the names in it (a rename, a new file) survive a power loss."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(folder: Path) -> None:
    """fsync every file under `folder`, then every folder, the deepest first."""
    folders = [folder]
    for path in sorted(folder.rglob("*")):
        if path.is_dir():
            folders.append(path)
        else:
            with path.open("rb") as stream:
                os.fsync(stream.fileno())
    for each in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        sync_dir(each)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _sweep(root: Path) -> tuple[str, ...]:
    """Remove what dead builds left; only to be called holding the lock exclusively."""
    removed = []
    for pattern in ABANDONED:
        for path in sorted(root.glob(pattern)):
            _remove(path)
            removed.append(path.relative_to(root).as_posix())
    return tuple(removed)


def _open_lock(root: Path) -> int | None:
    try:
        return os.open(root / LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:  # an index folder that cannot be written (mounted read-only): nothing to do
        return None


def _try_exclusive(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def remove_abandoned(root: Path) -> tuple[str, ...]:
    """Remove the staging folders and temporary files of builds that died, unless a build is
    running now (then nothing is touched); what was removed, relative to `root`."""
    if not root.is_dir():
        return ()
    fd = _open_lock(root)
    if fd is None:
        return ()
    try:
        return _sweep(root) if _try_exclusive(fd) else ()
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def build_lease(root: Path) -> Iterator[list[str]]:
    """Held for a whole build: staging is only ever removed by a sweep that holds the lock
    exclusively, which no sweep can while this process lives. Yields what was swept (before
    the build, and after it once the block ends)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
    swept: list[str] = []
    try:
        if _try_exclusive(fd):
            swept.extend(_sweep(root))
        # From exclusive to shared is not atomic in flock; nothing of this build exists yet,
        # so a sweep slipping in between finds nothing of it.
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield swept
        # The build's own staging has been renamed or removed by now: a sweep after it clears
        # what a build killed while this one ran has left.
        with suppress(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            swept.extend(_sweep(root))
    finally:
        os.close(fd)
