"""Read bulletin files: find them, decode them (UTF-8 or GB18030/GBK), read their sidecars."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from rag.documents import Bulletin

SUFFIXES = (".txt", ".md")
MAX_BYTES = 20 * 2**20  # a bulletin is a newspaper page, not a book
SIDECAR_SUFFIX = ".meta.json"


class BulletinError(ValueError):
    """A bulletin file that cannot be used; the message names the file and what to do."""


def find_bulletins(paths: Iterable[Path]) -> list[Path]:
    """Expand folders into their bulletin files (sorted); files are taken as given."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
            if not inside:
                raise BulletinError(f"{path}: no bulletins here (looked for {', '.join(SUFFIXES)})")
            found.extend(inside)
        elif path.is_file():
            if path.suffix not in SUFFIXES:
                raise BulletinError(f"{path}: not a bulletin file; expected {', '.join(SUFFIXES)}")
            found.append(path)
        else:
            raise BulletinError(f"{path}: no such file or folder")
    return found


def decode(raw: bytes, path: Path) -> str:
    """Bytes to text: UTF-8 (with or without BOM) first, then GB18030, which covers GBK."""
    if b"\x00" in raw:
        raise BulletinError(f"{path}: looks like a binary file (it contains NUL bytes), not text")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not text.strip():  # str.strip also removes full-width spaces; the BOM is gone by now
            raise BulletinError(f"{path}: the file is empty (no text, only blanks)")
        if _looks_like_text(text):
            return text.replace("\r\n", "\n").replace("\r", "\n")
    raise BulletinError(
        f"{path}: cannot be read as UTF-8 or GB18030/GBK text; convert it to UTF-8 and retry"
    )


def _looks_like_text(text: str) -> bool:
    # GB18030 decodes almost any byte string; real bulletins are mostly letters and punctuation.
    odd = sum(
        1
        for ch in text
        if (unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs") and ch not in "\n\r\t")
    )
    return odd <= max(2, len(text) // 200)


def load_bulletin(path: Path, root: Path) -> Bulletin:
    """One bulletin with its metadata (from `<name>.meta.json` when present)."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise BulletinError(f"{path}: {size} bytes is more than the {MAX_BYTES} a bulletin may be")
    raw = path.read_bytes()
    text = decode(raw, path)
    meta = _read_sidecar(path)
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    try:
        source = str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        source = str(path.resolve())
    return Bulletin(
        doc_id=_doc_id(path),
        source=source,
        text=text,
        title=str(meta.get("title") or first_line[:80]),
        language=str(meta.get("language") or _guess_language(text)),
        date=str(meta.get("date") or "unknown"),
        content_hash=hashlib.sha256(raw).hexdigest(),
    )


def load_bulletins(paths: Iterable[Path], root: Path) -> list[Bulletin]:
    """Every bulletin under `paths`; refuses two files that would share a doc_id."""
    bulletins = [load_bulletin(p, root) for p in find_bulletins(paths)]
    seen: dict[str, str] = {}
    for b in bulletins:
        if b.doc_id in seen:
            raise BulletinError(
                f"{b.source} and {seen[b.doc_id]} have the same name {b.doc_id!r}; rename one"
            )
        seen[b.doc_id] = b.source
    return bulletins


def _read_sidecar(path: Path) -> dict:
    sidecar = path.with_name(path.stem + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return {}
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BulletinError(f"{sidecar}: not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise BulletinError(f"{sidecar}: expected a JSON object with title, language, date")
    return meta


def _doc_id(path: Path) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "-", path.stem).strip("-") or "bulletin"


def _guess_language(text: str) -> str:
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return "zh" if cjk > len(text) * 0.2 else "en"
