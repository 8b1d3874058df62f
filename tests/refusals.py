"""What every bad-file test asks, for any format: the refusal names the file in one line, and
`rag index` over a folder holding it changes nothing of the index already built."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.ingest.load import BulletinError, load_bulletin
from tests.test_cli_streams import _env, _one_line_error, _rag


def assert_refused_by_name(path: Path, data: bytes, words: str) -> None:
    """`data` written to `path` is refused when loaded, in one line naming the file and `words`."""
    path.write_bytes(data)
    with pytest.raises(BulletinError) as info:
        load_bulletin(path, path.parent)
    assert str(path) in str(info.value) and words in str(info.value)
    assert "\n" not in str(info.value)


def _files(index: Path) -> list[tuple[Path, bytes]]:
    return sorted((p.relative_to(index), p.read_bytes()) for p in index.rglob("*") if p.is_file())


def assert_index_kept(home: Path, corpus: Path, name: str, data: bytes, words: str) -> str:
    """`rag index` of `corpus` (good files only) succeeds; with `data` added as `name`, it exits
    1 in one line naming it and `words`, and the index is byte for byte what it was. Returns
    what the first, good run printed."""
    env = _env(home)
    run = _rag(env, "index", str(corpus), fake=True)
    assert run.returncode == 0, run.stderr
    printed = run.stdout
    before = _files(home / "index")
    (corpus / name).write_bytes(data)
    run = _rag(env, "index", str(corpus), fake=True)
    _one_line_error(run, 1, str(corpus / name), words)
    assert _files(home / "index") == before
    return printed
