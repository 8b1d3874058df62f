"""The corpus stays the corpus: what resolves outside the folder being indexed is refused by
name and never read, whether `rag index` builds or `rag inspect` reads."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rag.cli import main
from rag.ingest.load import BulletinError, find_bulletins, load_bulletins
from tests.conftest import BULLETIN, FakeEmbedder

# Stands in for /etc/passwd: what must never reach the index or any output.
SECRET = "root:x:0:0:SECRET-MARKER-7f3a:/root:/bin/bash\n"


@pytest.fixture
def layout(tmp_path) -> tuple[Path, Path]:
    """A corpus folder with the real bulletin, and a folder outside it holding a secret."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(BULLETIN, corpus / BULLETIN.name)
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd.txt").write_text(SECRET, encoding="utf-8")
    return corpus, outside


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_ROOT", str(tmp_path))
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    for name in ("RAG_CORPUS_DIR", "RAG_MAX_BULLETIN_BYTES", "RAG_MODEL", "RAG_CHUNK_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(
        "rag.model.embed.load_embedder", lambda settings, show_progress=False: FakeEmbedder()
    )
    return tmp_path


def _never_read(monkeypatch, secret: Path) -> None:
    """Fail the test if anything opens the secret file's bytes."""
    real_read_bytes = Path.read_bytes

    def guarded(self: Path) -> bytes:
        assert self.resolve() != secret.resolve(), f"{secret} was read"
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", guarded)


def _refused(paths: list[Path], tmp_path: Path) -> str:
    with pytest.raises(BulletinError) as info:
        load_bulletins(paths, tmp_path)
    message = str(info.value)
    assert "SECRET-MARKER" not in message and "\n" not in message
    return message


def test_a_link_to_a_file_outside_is_refused_by_name(layout, tmp_path, monkeypatch):
    corpus, outside = layout
    (corpus / "passwd.txt").symlink_to(outside / "passwd.txt")
    _never_read(monkeypatch, outside / "passwd.txt")
    message = _refused([corpus], tmp_path)
    assert f"{corpus / 'passwd.txt'} leads out of {corpus}" in message


def test_a_relative_link_climbing_out_with_dotdot_is_refused(layout, tmp_path, monkeypatch):
    corpus, outside = layout
    (corpus / "sub").mkdir()
    (corpus / "sub" / "up.txt").symlink_to(Path("..") / ".." / "etc" / "passwd.txt")
    _never_read(monkeypatch, outside / "passwd.txt")
    assert str(corpus / "sub" / "up.txt") in _refused([corpus], tmp_path)


def test_a_linked_subfolder_pointing_outside_is_refused(layout, tmp_path, monkeypatch):
    corpus, outside = layout
    (corpus / "more").symlink_to(outside, target_is_directory=True)
    _never_read(monkeypatch, outside / "passwd.txt")
    message = _refused([corpus], tmp_path)
    assert f"{corpus / 'more'} leads out of {corpus}" in message


def test_a_sidecar_linked_outside_is_refused(layout, tmp_path):
    corpus, outside = layout
    (outside / "meta.json").write_text('{"title": "SECRET-MARKER-7f3a"}', encoding="utf-8")
    (corpus / f"{BULLETIN.stem}.meta.json").symlink_to(outside / "meta.json")
    assert f"{BULLETIN.stem}.meta.json leads out of" in _refused([corpus], tmp_path)
    # Named on its own, the bulletin is held to its own folder all the same.
    assert "meta.json leads out of" in _refused([corpus / BULLETIN.name], tmp_path)


def test_a_file_named_on_its_own_that_links_out_of_its_folder_is_refused(layout, tmp_path):
    corpus, outside = layout
    link = corpus / "passwd.txt"
    link.symlink_to(outside / "passwd.txt")
    assert f"{link} leads out of {corpus}" in _refused([link], tmp_path)


def test_a_link_to_nothing_and_a_named_pipe_are_refused_not_skipped(layout, tmp_path):
    corpus, _ = layout
    (corpus / "gone.txt").symlink_to(corpus / "deleted.txt")
    os.mkfifo(corpus / "pipe.txt")  # reading it would block for good
    message = _refused([corpus], tmp_path)
    assert f"{corpus / 'gone.txt'} is a link to nothing" in message
    assert f"{corpus / 'pipe.txt'} is not a plain file" in message


def test_every_refused_file_is_named_in_one_message(layout, tmp_path):
    corpus, outside = layout
    for k in range(3):
        (corpus / f"p{k}.txt").symlink_to(outside / "passwd.txt")
    message = _refused([corpus], tmp_path)
    assert all(f"p{k}.txt" in message for k in range(3))


def test_links_that_stay_inside_are_followed(layout, tmp_path):
    corpus, _ = layout
    (corpus / "sub").mkdir()
    (corpus / "sub" / "b.txt").write_text("标题\n正文。\n", encoding="utf-8")
    (corpus / "alias.txt").symlink_to(corpus / "sub" / "b.txt")
    # A linked subfolder pointing inside holds what is already found at its own place.
    (corpus / "again").symlink_to(corpus / "sub", target_is_directory=True)
    found = [p.relative_to(corpus).as_posix() for p in find_bulletins([corpus])]
    assert found == [BULLETIN.name, "alias.txt", "sub/b.txt"]
    assert len(load_bulletins([corpus], tmp_path)) == 3


def test_the_corpus_folder_itself_may_be_a_link(layout, tmp_path):
    corpus, _ = layout
    (tmp_path / "link-to-corpus").symlink_to(corpus, target_is_directory=True)
    assert len(load_bulletins([tmp_path / "link-to-corpus"], tmp_path)) == 1


def test_index_refuses_and_nothing_of_the_secret_reaches_the_index(
    layout, cli_env, capsys, monkeypatch
):
    corpus, outside = layout
    assert main(["index", str(corpus)]) == 0
    index = cli_env / "index"
    before = os.readlink(index / "current")
    capsys.readouterr()

    (corpus / "passwd.txt").symlink_to(outside / "passwd.txt")
    _never_read(monkeypatch, outside / "passwd.txt")
    code = main(["index", str(corpus)])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("rag: refused, not read: ") and "passwd.txt leads out of" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert os.readlink(index / "current") == before
    for path in index.rglob("*"):
        if path.is_file():
            assert b"SECRET-MARKER" not in path.read_bytes(), path

    # The default corpus folder (RAG_CORPUS_DIR) is held to the same rule, and so is inspect.
    monkeypatch.setenv("RAG_CORPUS_DIR", str(corpus))
    for argv in (["index"], ["inspect"], ["inspect", "--json"]):
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 1 and out == "" and "passwd.txt leads out of" in err, argv
        assert "SECRET-MARKER" not in out + err
