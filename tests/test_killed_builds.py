"""Builds killed at random points leave the current index valid and nothing behind once the
next build (or `rag serve`'s start) has run; a running build's staging is never touched; a
build is on disk before it becomes current."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

import rag.index.build
from rag.index.build import build_index
from rag.index.staging import ABANDONED, remove_abandoned
from rag.index.store import load_index
from rag.ingest.load import load_bulletins
from rag.pipeline import open_retriever, verify_index
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder, shared_glossary

KILLS = 30
# Two chunk budgets taken in turn: each change of budget has new passages to embed, so kills
# land in the embedding and its cache writes as well as in the writing of the build.
BUDGETS = (256, 160)

# A warm process that forks one builder per kill: starting Python and its libraries takes
# seconds a time on two cores, a fork none, and a forked builder dies of SIGKILL like any other.
# It answers "build <budget>" with the pid of a child building over and over, "reap" with
# "reaped" once that child has died; `patch` runs first (the tests' hook into a build).
BUILDERS = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {repo!r})
    import bm25s, faiss  # imported before the forks, used only in the children
    import rag.index.build
    from rag.index.build import build_index, passages_of
    from rag.ingest.load import load_bulletins
    from rag.settings import Settings
    from tests.conftest import BULLETIN, REPO, FakeEmbedder

    rag.index.build.CACHE_BATCH = 16  # many cache writes, so kills fall between them too
    {patch}
    bulletins = load_bulletins([BULLETIN], REPO)
    passages_of(bulletins, Settings(root=REPO))  # the tokenizer's tables, read once here
    print("ready", flush=True)
    child = None
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "build":
            child = os.fork()
            if child == 0:
                settings = Settings(root=REPO, index_dir={index!r}, chunk_tokens=int(rest[0]))
                while True:
                    build_index(bulletins, FakeEmbedder(), settings)
            print(child, flush=True)
        elif command == "reap":
            os.waitpid(child, 0)
            print("reaped", flush=True)
    """
)


class Builders:
    """The forking process above: `start` a builder, kill it, `reap` it."""

    def __init__(self, index: Path, patch: str = "") -> None:
        script = BUILDERS.format(repo=str(REPO), index=str(index), patch=patch)
        self.process = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._ask(None) == "ready", "the builders' process did not start"

    def _ask(self, line: str | None) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        if line is not None:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def start(self, budget: int) -> int:
        return int(self._ask(f"build {budget}"))

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)  # no handler runs: what is on disk is what is left
        assert self._ask("reap") == "reaped"

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def _abandoned(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix() for pattern in ABANDONED for p in root.glob(pattern)
    )


def _settings(root: Path, budget: int = BUDGETS[0]) -> Settings:
    return Settings(root=REPO, index_dir=root, chunk_tokens=budget)


def _budget_of(root: Path) -> int:
    """The chunk budget the current build was made with (the builders take turns)."""
    manifest = json.loads((root / "current" / "manifest.json").read_text(encoding="utf-8"))
    return manifest["chunker"]["chunk_tokens"]


def _assert_current_is_valid(root: Path) -> None:
    """`current` passes the full check and loads with the settings it was built with."""
    verify_index(_settings(root))
    settings = _settings(root, _budget_of(root))
    index = load_index(settings, model_id=FakeEmbedder.model_id, dim=FakeEmbedder.dim)
    assert len(index.passages) == index.manifest["counts"]["passages"] > 0


def test_random_kills_leave_a_valid_index_and_no_leftovers(tmp_path):
    root = tmp_path / "index"
    bulletins = load_bulletins([BULLETIN], REPO)
    build_index(bulletins, FakeEmbedder(), _settings(root))  # the index the kills must not harm
    started = time.perf_counter()
    build_index(bulletins, FakeEmbedder(), _settings(root))
    one_build = time.perf_counter() - started

    chance = random.Random(14)  # a fixed seed: the same kill points, as far as timing allows
    left_behind = swept_at_start = 0
    kinds: Counter[str] = Counter()  # what was left, by pattern: where the kills fell
    builders = Builders(root)
    try:
        for kill in range(KILLS):
            budget = BUDGETS[kill % 2]
            pid = builders.start(budget)
            time.sleep(chance.uniform(0, 3 * one_build))  # the builder loops: later builds too
            builders.kill(pid)

            leftovers = _abandoned(root)
            left_behind += bool(leftovers)
            kinds.update(p for p in ABANDONED for path in leftovers if fnmatch(path, p))
            _assert_current_is_valid(root)
            if kill % 3 == 0:
                # What `rag serve` does at start: it sweeps before it loads.
                open_retriever(
                    _settings(root, _budget_of(root)),
                    build_if_missing=False,
                    embedder=FakeEmbedder(),
                    glossary=shared_glossary(),
                )
                swept_at_start += bool(leftovers)
                assert _abandoned(root) == []
            elif kill % 5 == 0:
                build_index(bulletins, FakeEmbedder(), _settings(root, budget))
                assert _abandoned(root) == []
    finally:
        builders.close()

    build_index(bulletins, FakeEmbedder(), _settings(root))
    assert _abandoned(root) == []
    builds = sorted((root / "builds").iterdir())
    # The current build and the one kept before it: nothing else takes disk space.
    assert len(builds) == rag.index.build.KEEP_BUILDS
    assert all((b / "manifest.json").is_file() for b in builds)
    assert (root / "current").resolve() in builds
    _assert_current_is_valid(root)
    # Kills that left something are the point of the test: without them it proves nothing.
    assert left_behind >= 3, f"only {left_behind} of {KILLS} kills left anything behind"
    print(
        f"\n{KILLS} kills, one build {one_build:.2f} s: {left_behind} left staging or temporary "
        f"files ({swept_at_start} swept by an opening), the index valid after every one; "
        f"left: {dict(kinds)}"
    )


def test_a_running_builds_staging_is_kept_and_a_dead_ones_swept(tmp_path):
    root = tmp_path / "index"
    build_index(load_bulletins([BULLETIN], REPO), FakeEmbedder(), _settings(root))
    # The builder stops for good while its staging folder exists.
    patch = "import time; rag.index.build.save_lexical = lambda *a, **k: time.sleep(600)"
    builders = Builders(root, patch=patch)
    pid = builders.start(BUDGETS[0])
    try:
        deadline = time.monotonic() + 60
        while not list((root / "builds").glob(".*.partial")):
            assert time.monotonic() < deadline, "the builder never made its staging folder"
            time.sleep(0.05)
        (staging,) = (root / "builds").glob(".*.partial")
        assert remove_abandoned(root) == ()
        # Neither an opening (what `rag serve` does) nor another build removes it.
        open_retriever(
            _settings(root),
            build_if_missing=False,
            embedder=FakeEmbedder(),
            glossary=shared_glossary(),
        )
        build_index(load_bulletins([BULLETIN], REPO), FakeEmbedder(), _settings(root))
        assert staging.is_dir()
    finally:
        builders.kill(pid)
        builders.close()
    assert remove_abandoned(root) == (staging.relative_to(root).as_posix(),)
    assert not staging.exists()


def test_a_build_is_on_disk_before_it_is_current(tmp_path, monkeypatch):
    """Files, then their folders, are fsynced before the rename; the folders holding the
    renamed build and the swapped link after each."""
    root = tmp_path / "index"
    events: list[tuple[str, str]] = []
    fsync, rename, replace = os.fsync, os.rename, os.replace

    def spy_fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return fsync(fd)

    def spy_rename(src, dst, **kwargs):
        events.append(("rename", str(dst)))
        return rename(src, dst, **kwargs)

    def spy_replace(src, dst, **kwargs):
        events.append(("replace", str(dst)))
        return replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "rename", spy_rename)
    monkeypatch.setattr(os, "replace", spy_replace)
    report = build_index(load_bulletins([BULLETIN], REPO), FakeEmbedder(), _settings(root))
    monkeypatch.undo()

    final = report.path
    renamed = events.index(("rename", str(final)))
    swapped = events.index(("replace", str(root / "current")))
    before = {path for kind, path in events[:renamed] if kind == "fsync"}
    staging = str(final.with_name(f".{final.name}.partial"))
    files = [p.relative_to(final) for p in final.rglob("*")]
    assert files and all(f"{staging}/{f}" in before for f in files)  # every file and folder
    assert staging in before
    assert ("fsync", str(root / "builds")) in events[renamed:swapped]
    assert ("fsync", str(root)) in events[swapped:]
