"""Finding, decoding and loading bulletin files; every refusal names the file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from rag.ingest.load import (
    MAX_BYTES,
    BulletinError,
    decode,
    find_bulletins,
    load_bulletin,
    load_bulletins,
)
from tests.conftest import BULLETIN, REPO

TEXT = (
    "重庆：以数字化推动工业经济提质增效\n"
    "本报记者 吴丽琳\n"
    "记者从日前召开的工作会议上了解到，工业投资增长14%。\n"
)
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _raises_naming(path: Path, call) -> BulletinError:
    with pytest.raises(BulletinError) as info:
        call()
    assert str(path) in str(info.value)
    return info.value


# --- encodings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        TEXT.encode("utf-8"),
        b"\xef\xbb\xbf" + TEXT.encode("utf-8"),
        TEXT.encode("gbk"),
        TEXT.encode("gb18030"),
        TEXT.replace("\n", "\r\n").encode("utf-8"),
        TEXT.replace("\n", "\r\n").encode("gbk"),
    ],
    ids=["utf8", "utf8-bom", "gbk", "gb18030", "utf8-crlf", "gbk-crlf"],
)
def test_encodings_decode_to_the_same_text(tmp_path, data):
    path = _write(tmp_path / "b.txt", data)
    assert decode(data, path) == TEXT
    bulletin = load_bulletin(path, tmp_path)
    assert bulletin.text == TEXT
    assert bulletin.content_hash == hashlib.sha256(data).hexdigest()
    assert bulletin.source == "b.txt" and bulletin.doc_id == "b"
    # Without a sidecar: title from the first line, language guessed, date unknown.
    assert bulletin.title == "重庆：以数字化推动工业经济提质增效"
    assert bulletin.language == "zh" and bulletin.date == "unknown"


def test_gbk_sample_is_not_utf8():
    # Otherwise the GBK case above would not exercise the fallback.
    with pytest.raises(UnicodeDecodeError):
        TEXT.encode("gbk").decode("utf-8")


def test_real_bulletin_with_sidecar():
    bulletin = load_bulletin(BULLETIN, REPO)
    assert bulletin.source == "corpus/000_a1e9ce7368794dc6.txt"
    assert bulletin.doc_id == "000_a1e9ce7368794dc6"
    assert (bulletin.title, bulletin.language, bulletin.date) == (
        "2024年地方重点工作解读",
        "zh",
        "2024-01",
    )
    assert bulletin.text == BULLETIN.read_text(encoding="utf-8")


# --- refusals ------------------------------------------------------------------------------------

UNDECODABLE = "工业".encode() + b"\xff\xfe\x80\xff" * 8


def test_undecodable_sample_fails_both_encodings():
    for encoding in ("utf-8", "utf-8-sig", "gb18030", "gbk"):
        with pytest.raises(UnicodeDecodeError):
            UNDECODABLE.decode(encoding)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"  \n\t\r\n   \n", "empty"),
        (PNG_HEADER, "binary"),
        (TEXT.encode() + b"\x00\x00", "binary"),
        (UNDECODABLE, "UTF-8"),
    ],
    ids=["empty", "whitespace", "png", "nul-in-text", "undecodable"],
)
def test_unusable_file_is_refused_by_name(tmp_path, data, words):
    path = _write(tmp_path / "bad.txt", data)
    error = _raises_naming(path, lambda: load_bulletin(path, tmp_path))
    assert words in str(error)
    _raises_naming(path, lambda: load_bulletins([tmp_path], tmp_path))


@pytest.mark.parametrize(
    "data",
    [b"\xef\xbb\xbf", b"\xef\xbb\xbf \n\n", "\u3000\u3000\n".encode(), "\u3000\n".encode("gbk")],
    ids=["bom-only", "bom-whitespace", "ideographic-space-utf8", "ideographic-space-gbk"],
)
def test_blank_file_in_disguise_is_refused(tmp_path, data):
    path = _write(tmp_path / "blank.txt", data)
    _raises_naming(path, lambda: load_bulletin(path, tmp_path))


def test_wrong_suffix_is_refused(tmp_path):
    path = _write(tmp_path / "bulletin.rtf", TEXT.encode())
    error = _raises_naming(path, lambda: find_bulletins([path]))
    assert ".txt" in str(error)


def test_folder_without_bulletins_is_refused(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    _write(folder / "notes.doc", b"\xd0\xcf\x11\xe0")  # old Word: not read (PDF now is)
    _raises_naming(folder, lambda: find_bulletins([folder]))


def test_missing_path_is_refused(tmp_path):
    path = tmp_path / "nowhere.txt"
    error = _raises_naming(path, lambda: load_bulletins([path], tmp_path))
    assert "no such file" in str(error)


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "huge.txt"
    with path.open("wb") as out:
        out.truncate(MAX_BYTES + 1)  # sparse: the size check comes before reading
    _raises_naming(path, lambda: load_bulletin(path, tmp_path))


def test_two_files_with_the_same_name_are_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _write(tmp_path / folder / "same.txt", TEXT.encode())
    with pytest.raises(BulletinError) as info:
        load_bulletins([tmp_path], tmp_path)
    assert "a/same.txt" in str(info.value) and "b/same.txt" in str(info.value)


# --- sidecars ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sidecar",
    [b'{"title": "x", ', b"[1, 2, 3]", '{"title": "标题"}'.encode("gbk")],
    ids=["truncated-json", "not-an-object", "not-utf8"],
)
def test_bad_sidecar_is_refused_by_name(tmp_path, sidecar):
    path = _write(tmp_path / "b.txt", TEXT.encode())
    meta = _write(tmp_path / "b.meta.json", sidecar)
    error = _raises_naming(meta, lambda: load_bulletin(path, tmp_path))
    assert str(meta) in str(error)


def test_sidecar_overrides_title_language_and_date(tmp_path):
    path = _write(tmp_path / "b.txt", TEXT.encode("gbk"))
    meta = {"title": "地方工作", "language": "zh-Hans", "date": "2024-02-03"}
    (tmp_path / "b.meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    bulletin = load_bulletin(path, tmp_path)
    assert (bulletin.title, bulletin.language, bulletin.date) == (
        "地方工作",
        "zh-Hans",
        "2024-02-03",
    )


def test_find_bulletins_sorts_folders_and_skips_sidecars(tmp_path):
    for name in ("b.txt", "a.md", "a.meta.json", "c.json", "sub/d.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        _write(tmp_path / name, TEXT.encode())
    found = [os.path.relpath(p, tmp_path) for p in find_bulletins([tmp_path])]
    assert found == ["a.md", "b.txt", "sub/d.txt"]
