"""A damaged index is refused, in one line naming the file and `rag index`, never served and
never a traceback: every file of a small build truncated, zeroed and garbled in turn."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.index.build import build_index
from rag.index.integrity import is_bulk
from rag.index.store import FORMAT
from rag.ingest.load import load_bulletins
from rag.pipeline import IndexDamaged, IndexStale, open_retriever, verify_index
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder, free_port, shared_glossary

# Every file of a build. A build that writes another file fails the first test below until the
# file is named here, and so damaged by the others too.
BUILD_FILES = (
    "manifest.json",
    "passages.jsonl",
    "bulletins.json",
    "sentences.npy",
    "vectors.npy",
    "sentence_vectors.npy",
    "vectors.faiss",
    *(
        f"lexical/{part}/{name}"
        for part in ("passages", "sentences")
        for name in (
            "built_from",
            "params.index.json",
            "vocab.index.json",
            "data.csc.index.npy",
            "indices.csc.index.npy",
            "indptr.csc.index.npy",
        )
    ),
)
DAMAGES = ("truncated", "zeroed", "garbled")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """One small build (the real bulletin, the fake embedder); each test damages a copy."""
    home = tmp_path_factory.mktemp("template")
    settings = Settings(root=REPO, index_dir=home / "index")
    build_index(load_bulletins([BULLETIN], REPO), FakeEmbedder(), settings)
    return home / "index"


@pytest.fixture
def index_copy(template, tmp_path) -> Settings:
    shutil.copytree(template, tmp_path / "index", symlinks=True)
    return Settings(root=REPO, index_dir=tmp_path / "index")


def _build_folder(settings: Settings) -> Path:
    return (settings.index_path / "current").resolve()


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zeroed":
        path.write_bytes(bytes(len(data)))
    else:  # one byte in the middle, every bit flipped: past any header, inside the payload
        garbled = bytearray(data)
        garbled[len(garbled) // 2] ^= 0xFF
        path.write_bytes(bytes(garbled))


def _open(settings: Settings):
    return open_retriever(
        settings, build_if_missing=False, embedder=FakeEmbedder(), glossary=shared_glossary()
    )


def _assert_names(message: str, path: Path) -> None:
    assert "\n" not in message, message
    assert str(path) in message and "rebuild it with `rag index`" in message, message


def test_the_manifest_lists_every_file_with_size_and_checksum(template):
    folder = (template / "current").resolve()
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert on_disk == sorted(BUILD_FILES)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == FORMAT
    assert sorted(manifest["contents"]) == sorted(set(BUILD_FILES) - {"manifest.json"})
    for name, entry in manifest["contents"].items():
        assert entry["size"] == (folder / name).stat().st_size
        assert len(entry["sha256"]) == 64


def test_an_undamaged_copy_loads_and_verifies(index_copy):
    assert _open(index_copy).search("北京商业航天", k=1)
    checked = verify_index(index_copy)
    assert checked.files == len(BUILD_FILES) - 1
    assert checked.hashed_bytes == sum(
        (_build_folder(index_copy) / n).stat().st_size for n in BUILD_FILES if n != "manifest.json"
    )


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", BUILD_FILES)
def test_a_damaged_file_is_refused_by_load_and_verify(index_copy, name, how):
    damaged = _build_folder(index_copy) / name
    _damage(damaged, how)

    with pytest.raises(IndexDamaged) as verified:
        verify_index(index_copy)
    _assert_names(str(verified.value), damaged)

    with pytest.raises(IndexDamaged) as loaded:
        _open(index_copy)
    _assert_names(str(loaded.value), damaged)


@pytest.mark.parametrize("name", [n for n in BUILD_FILES if is_bulk(n)])
def test_a_quick_load_checks_the_bulk_arrays_by_structure_only(index_copy, name):
    """RAG_INDEX_CHECKS=quick hashes the bulk arrays at build and by --verify only: a byte
    changed inside their payload is refused when it breaks a structural check (postings out of
    range, offsets out of order, a non-finite vector), otherwise found by --verify. Either way,
    never a traceback."""
    damaged = _build_folder(index_copy) / name
    _damage(damaged, "garbled")
    quick = index_copy.model_copy(update={"index_checks": "quick"})
    try:
        _open(quick)
    except IndexDamaged as exc:
        _assert_names(str(exc), damaged)
    with pytest.raises(IndexDamaged) as verified:
        verify_index(quick)
    _assert_names(str(verified.value), damaged)


def test_a_file_gone_is_refused_naming_it(index_copy):
    gone = _build_folder(index_copy) / "lexical" / "sentences" / "indptr.csc.index.npy"
    gone.unlink()
    with pytest.raises(IndexDamaged) as caught:
        _open(index_copy)
    _assert_names(str(caught.value), gone)


def test_a_wrong_shape_is_refused_even_when_sizes_and_checksums_agree(index_copy):
    """A build bug, not damage: an array whose shape does not fit the passage count."""
    import numpy as np

    from rag.index.integrity import describe, seal

    folder = _build_folder(index_copy)
    vectors = np.load(folder / "vectors.npy")
    np.save(folder / "vectors.npy", vectors[:-1])  # one passage short
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["contents"] = describe(folder)
    (folder / "manifest.json").write_text(json.dumps(seal(manifest)), encoding="utf-8")
    verify_index(index_copy)  # what is on disk is what the manifest says
    with pytest.raises(IndexDamaged, match=r"float32 \(38, 64\), expected float32 \(39, 64\)"):
        _open(index_copy)


def test_an_edited_manifest_is_refused_by_its_own_checksum(index_copy):
    path = _build_folder(index_copy) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["counts"]["passages"] += 1  # still JSON, still plausible
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    with pytest.raises(IndexDamaged, match="its checksum does not match its content") as caught:
        _open(index_copy)
    _assert_names(str(caught.value), path)


def test_an_index_of_the_old_format_is_refused_with_rebuild(index_copy):
    path = _build_folder(index_copy) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for key in ("contents", "checksum", "checksum_algorithm"):
        del manifest[key]
    manifest["format"] = 3  # as every index built before the manifest listed its files
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    for attempt in (_open, verify_index):
        with pytest.raises(
            IndexStale,
            match=r"index format 3, this version reads \d+\); rebuild it with `rag index`",
        ):
            attempt(index_copy)


# --- the command line, as a process -----------------------------------------------------------

# `rag` with the fake embedder in place of the real model, as its own process.
FAKE_RAG = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    import rag.model.embed
    from tests.conftest import FakeEmbedder
    rag.model.embed.load_embedder = lambda settings, *, show_progress=False: FakeEmbedder()
    from rag.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _rag(settings: Settings, *argv: str, fake_model: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {"RAG_ROOT": str(REPO), "RAG_INDEX_DIR": str(settings.index_path)}
    command = ["-c", FAKE_RAG.format(repo=str(REPO))] if fake_model else ["-m", "rag.cli"]
    return subprocess.run(
        [sys.executable, *command, *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("name", "how"),
    [("bulletins.json", "truncated"), ("lexical/passages/data.csc.index.npy", "zeroed")],
)
def test_rag_serve_on_a_damaged_index_exits_with_one_line(index_copy, name, how):
    """The issue's two tracebacks (a cut bulletins.json, a BM25 array) are now one line."""
    damaged = _build_folder(index_copy) / name
    _damage(damaged, how)
    done = _rag(index_copy, "serve", "--port", str(free_port()), fake_model=True)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    refusals = [line for line in done.stderr.splitlines() if str(damaged) in line]
    assert refusals and all("rebuild it with `rag index`" in line for line in refusals)


def test_rag_index_verify_finds_what_the_fast_load_does_not(index_copy):
    quick = index_copy.model_copy(update={"index_checks": "quick"})
    assert _open(quick)
    done = _rag(index_copy, "index", "--verify", fake_model=False)
    assert done.returncode == 0 and done.stdout.startswith("index OK: "), done.stderr

    damaged = _build_folder(index_copy) / "vectors.npy"
    data = bytearray(damaged.read_bytes())
    first_float = len(data) - 39 * FakeEmbedder.dim * 4  # the payload follows the header
    data[first_float] ^= 0xFF  # the lowest byte of the first vector's first value
    damaged.write_bytes(bytes(data))
    _open(quick)  # a quick load: a value off in its last bits is no structure to check
    with pytest.raises(IndexDamaged):
        _open(index_copy)  # the full check, the default, refuses it
    done = _rag(index_copy, "index", "--verify", fake_model=False)
    assert done.returncode != 0, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert "sha256 does not match" in line
    _assert_names(line, damaged)


# --- the embedding cache beside the builds ------------------------------------------------------


def test_a_garbled_cache_batch_is_set_aside_not_served(index_copy):
    """One byte of a batch changed, its size the same: the zip's CRC-32 refuses it, and the
    next build embeds its texts again rather than trusting a vector of it."""
    from rag.index.embed_cache import CACHE_DIR

    (batch,) = (index_copy.index_path / CACHE_DIR / "fake_char-hash").glob("*.npz")
    _damage(batch, "garbled")
    embedder = FakeEmbedder()
    report = build_index(load_bulletins([BULLETIN], REPO), embedder, index_copy)
    assert report.damaged_cache and "CRC" in report.damaged_cache[0]
    assert report.embedded == report.passages  # none of the batch's vectors was reused
    assert batch.with_name(batch.name + ".damaged").is_file()
    verify_index(index_copy)
