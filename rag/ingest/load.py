"""Read bulletin files: find them, decode them (UTF-8 or GB18030/GBK), read their sidecars.

The corpus stays the corpus: a folder named to be indexed (on the command line, or
RAG_CORPUS_DIR) is the boundary of what is read from it, and a file named on its own is read
only inside the folder it is named in. A link, or a linked subfolder, that resolves outside is
refused by name before anything is read, and so is anything there that is not a plain file
(a link to nothing, a named pipe that would block the read for good): never read, never
skipped without a word.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from rag.documents import Bulletin
from rag.ingest import formats, pdf

# Matched whatever their case: a scanner or an old system names its files PAGE01.PDF.
SUFFIXES = (".txt", ".md", ".html", ".htm", ".docx", ".pdf")
# The default of RAG_MAX_BULLETIN_BYTES. A bulletin is a newspaper page, not a book: the
# largest page of the archive is 48,901 bytes; this is ten times that, and at the default
# model's pace (about 40 texts a second on 2 cores) about a minute of embedding.
MAX_BYTES = 512 * 2**10
# A web page, Word file or PDF weighs far more than the text it gives (markup and scripts;
# fonts, photos and the zip): a newspaper page's PDF is 1 to 10 MB for its 20 KB of text. Such
# a file may weigh this many times the limit, and the text it gives is held to the limit.
PACKED_PER_TEXT_BYTE = 64
_PACKED_SUFFIXES = (".html", ".htm", ".docx", ".pdf")
SIDECAR_SUFFIX = ".meta.json"
# How many refused files one message names (the count says how many more).
_NAMED = 5


class BulletinError(ValueError):
    """A bulletin file that cannot be used; the message names the file and what to do."""


def find_bulletins(paths: Iterable[Path]) -> list[Path]:
    """Expand folders into their bulletin files (sorted); files are taken as given.

    Refuses, naming them all, the files and linked folders that resolve outside the folder they
    were found in (or, for a file given by name, the folder it is named in)."""
    found: list[Path] = []
    refused: list[str] = []
    for path in paths:
        if path.is_dir():
            inside = _walk(path, refused)
            if not inside and not refused:
                raise BulletinError(f"{path}: no bulletins here (looked for {', '.join(SUFFIXES)})")
            found.extend(inside)
        elif path.is_file():
            if not is_bulletin_file(path):
                raise BulletinError(f"{path}: not a bulletin file; expected {', '.join(SUFFIXES)}")
            folder = path.parent.resolve()
            for candidate in (path, _sidecar_of(path)):
                if candidate.is_symlink() or candidate.exists():
                    _check_within(candidate, folder, refused)
            found.append(path)
        else:
            raise BulletinError(f"{path}: no such file or folder")
    if refused:
        more = f" and {len(refused) - _NAMED} more" if len(refused) > _NAMED else ""
        raise BulletinError(
            f"refused, not read: {'; '.join(refused[:_NAMED])}{more}. A bulletin is read only "
            "inside the folder it is found in: copy the file in rather than link to it"
        )
    return found


def _walk(folder: Path, refused: list[str]) -> list[Path]:
    """The bulletin files under `folder`, sorted; what leads outside it goes to `refused`.

    Linked subfolders are not descended: one that points inside holds files already found at
    their own place, and one that points outside is refused."""
    boundary = folder.resolve()
    found: list[Path] = []

    def unreadable(error: OSError) -> None:
        refused.append(f"{error.filename} cannot be read ({error.strerror})")

    for top, dirs, files in os.walk(folder, onerror=unreadable):
        here = Path(top)
        for name in dirs:
            if (here / name).is_symlink():
                _check_within(here / name, boundary, refused, want_file=False)
        for name in files:
            path = here / name
            if is_bulletin_file(path):
                if _check_within(path, boundary, refused):
                    found.append(path)
            elif name.endswith(SIDECAR_SUFFIX):
                _check_within(path, boundary, refused)
    return sorted(found)


def is_bulletin_file(path: Path) -> bool:
    """Whether the file's suffix, in any case, is one of SUFFIXES."""
    return path.suffix.lower() in SUFFIXES


def _check_within(path: Path, boundary: Path, refused: list[str], want_file: bool = True) -> bool:
    """Whether `path` resolves to a plain file (or folder) inside `boundary`; if not, why, in
    `refused`."""
    target = path.resolve()
    if not target.is_relative_to(boundary):
        refused.append(f"{path} leads out of {boundary} (to {target})")
        return False
    if want_file and not target.is_file():
        what = "a link to nothing" if not target.exists() else "not a plain file"
        refused.append(f"{path} is {what}")
        return False
    return True


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


def load_bulletin(
    path: Path, root: Path, max_bytes: int = MAX_BYTES, max_pages: int = pdf.MAX_PAGES
) -> Bulletin:
    """One bulletin with its metadata (from `<name>.meta.json` when present, else from what a
    web page, Word file or PDF says of itself); a file over `max_bytes` is refused before it is
    read (a web page, Word file or PDF over PACKED_PER_TEXT_BYTE times that, and one whose text
    is over `max_bytes` once read).

    A web page's, Word file's or PDF's text is what its format gives (rag.ingest.formats,
    rag.ingest.pdf): that text is what is indexed and cited into, and a PDF's layout says where
    each of its characters was printed; the content hash is of the file's bytes."""
    size = path.stat().st_size
    packed = path.suffix.lower() in _PACKED_SUFFIXES
    limit = max_bytes * (PACKED_PER_TEXT_BYTE if packed else 1)
    if size > limit:
        times = f"{PACKED_PER_TEXT_BYTE} x " if packed else ""
        raise BulletinError(
            f"{path}: {size} bytes is more than the {limit} a {'file' if packed else 'bulletin'} "
            f"may be ({times}RAG_MAX_BULLETIN_BYTES); split it into smaller bulletins"
        )
    raw = path.read_bytes()
    extracted = _extract(raw, path, max_bytes, max_pages)
    text = extracted.text
    if packed and len(text.encode("utf-8")) > max_bytes:
        raise BulletinError(
            f"{path}: its text is {len(text.encode('utf-8'))} bytes, more than the {max_bytes} "
            "a bulletin may be (RAG_MAX_BULLETIN_BYTES); split it into smaller bulletins"
        )
    meta = {
        "title": extracted.title,
        "date": extracted.date,
        "site": extracted.site,
        "url": extracted.url,
    } | {key: value for key, value in _read_sidecar(path).items() if value}
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
        layout=extracted.layout,
        site=str(meta.get("site") or ""),
        url=formats.web_address(str(meta.get("url") or "")),
    )


def _extract(raw: bytes, path: Path, max_bytes: int, max_pages: int) -> formats.Extracted:
    """The text of a bulletin file by its suffix, with what the file says of itself."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".html", ".htm"):
            return formats.html_text(raw)
        if suffix == ".docx":
            return formats.docx_text(raw, max_bytes)
        if suffix == ".pdf":
            return pdf.pdf_text(raw, max_pages)
    except formats.FormatError as exc:
        raise BulletinError(f"{path}: {exc}") from exc
    return formats.Extracted(decode(raw, path))


def load_bulletins(
    paths: Iterable[Path], root: Path, max_bytes: int = MAX_BYTES, max_pages: int = pdf.MAX_PAGES
) -> list[Bulletin]:
    """Every bulletin under `paths`; refuses two files that would share a doc_id."""
    bulletins = [load_bulletin(p, root, max_bytes, max_pages) for p in find_bulletins(paths)]
    seen: dict[str, str] = {}
    for b in bulletins:
        if b.doc_id in seen:
            raise BulletinError(
                f"{b.source} and {seen[b.doc_id]} have the same name {b.doc_id!r}; rename one"
            )
        seen[b.doc_id] = b.source
    return bulletins


def _sidecar_of(path: Path) -> Path:
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def _read_sidecar(path: Path) -> dict:
    sidecar = _sidecar_of(path)
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
