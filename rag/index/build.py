"""Building the index: parse, chunk, embed what the cache lacks, write a new build, swap it in.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from rag.documents import Bulletin, ParsedBulletin, Passage
from rag.index.dense import dense_index
from rag.index.embed_cache import EmbeddingCache, embed_key
from rag.index.integrity import CHECKSUM, MANIFEST, describe, seal
from rag.index.lexical import LEXICAL_DIR, save_lexical
from rag.index.staging import build_lease, sync_dir, sync_tree
from rag.index.store import FORMAT, IndexUnusable, chunker_settings
from rag.ingest.accounting import coverage
from rag.ingest.chunk import body_sentences, chunk_bulletin
from rag.ingest.structure import parse_bulletin
from rag.ingest.tokens import count_tokens, get_encoding
from rag.model.embed import Embedder
from rag.pages import layout_json, page_runs
from rag.settings import Settings

# Complete builds kept: the current one and the one before it (a reader that resolved
# `current` just before a swap still finds its files). Staging folders are never kept: a build
# removes its own when it fails, and a killed one's is swept (rag.index.staging).
KEEP_BUILDS = 2


@dataclass(frozen=True)
class BuildReport:
    files: int
    articles: int
    passages: int
    embedded: int  # passages whose vectors had to be computed (the rest were reused)
    sentences_embedded: int
    seconds: float
    path: Path
    characters: int = 0  # non-blank characters of the bulletins
    in_passages: int = 0
    labelled_only: int = 0  # headings, credits, pull quotes: labelled, not indexed
    unaccounted: dict[str, int] = dataclasses.field(default_factory=dict)  # source -> characters
    # Cache batch files that could not be read: set aside, their texts embedded again.
    damaged_cache: tuple[str, ...] = ()
    # What builds killed earlier had left (staging folders, temporary files), now removed.
    swept: tuple[str, ...] = ()


def passages_of(
    bulletins: list[Bulletin], settings: Settings
) -> tuple[list[ParsedBulletin], list[Passage]]:
    """Parse and chunk bulletins with the configured tokenizer and budget."""
    encoding = get_encoding(settings.tiktoken_encoding, settings.cache_dir)
    parsed = [parse_bulletin(b) for b in bulletins]
    passages = [
        p
        for pb in parsed
        for p in chunk_bulletin(pb, lambda t: count_tokens(t, encoding), settings.chunk_tokens)
    ]
    return parsed, passages


def document_json(parsed: ParsedBulletin) -> dict[str, Any]:
    """A bulletin's text and outline, as /v1/documents returns it; a PDF's also with the page
    each run of its text was printed on, and where each line stands (rag.pages)."""
    b = parsed.bulletin
    printed: dict[str, Any] = {}
    # Where a web page was published, when it says (absent otherwise, as a PDF's pages are).
    published = {key: value for key, value in (("site", b.site), ("url", b.url)) if value}
    if b.layout is not None:
        layout = layout_json(b.layout)
        printed = {"pages": page_runs(layout["lines"]), "layout": layout}
    return {
        "doc_id": b.doc_id,
        "source": b.source,
        "title": b.title,
        "language": b.language,
        "date": b.date,
        "text": b.text,
        "articles": [
            {
                "number": a.number,
                "headline": a.headline,
                "headline_span": dataclasses.asdict(a.headline_span),
                "byline": a.byline,
                "kicker": a.kicker,
                "subtitle": a.subtitle,
                "dateline": a.dateline,
                "span": dataclasses.asdict(a.span),
                "region": a.region,
                "date": a.date,
                "paragraphs": [
                    {
                        "number": p.number,
                        "section": p.section,
                        "spans": [dataclasses.asdict(s) for s in p.spans],
                    }
                    for p in a.paragraphs
                ],
            }
            for a in parsed.articles
        ],
    } | published | printed


# Texts embedded between two writes to the cache: what a killed build can lose at most.
CACHE_BATCH = 1024


def _in_batches(
    order: list[int], size: int, *, show_progress: bool, unit: str
) -> Iterator[list[int]]:
    """`order` in batches of `size`, with a progress bar over all of them when asked."""
    bar = None
    if show_progress and order:
        from tqdm import tqdm

        bar = tqdm(total=len(order), desc="embedding", unit=unit)
    try:
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            yield batch
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()


def _embed_missing(
    texts: list[str],
    keys: list[bytes],
    embedder: Embedder,
    cache: EmbeddingCache,
    *,
    show_progress: bool,
) -> set[int]:
    """Embed the texts the cache lacks (each distinct text once), saving every CACHE_BATCH to
    it as they are made; the indices of `texts` that had to be embedded."""
    first: dict[bytes, int] = {}
    for i, key in enumerate(keys):
        if key not in cache:
            first.setdefault(key, i)
    # Longest first, so that batches are of like lengths and the bar's pace only rises.
    order = sorted(first.values(), key=lambda i: -len(texts[i]))
    for batch in _in_batches(order, CACHE_BATCH, show_progress=show_progress, unit="text"):
        cache.put([keys[i] for i in batch], embedder.encode_passages([texts[i] for i in batch]))
    missing = set(first)
    return {i for i, key in enumerate(keys) if key in missing}


def _embed_pooled(
    passages: list[Passage],
    sentences: list[tuple[int, int, int]],
    embedder: Embedder,
    cache: EmbeddingCache,
    settings: Settings,
    show_progress: bool,
) -> tuple[list[bytes], set[int]]:
    """Passage vectors and sentence vectors pooled from the same forward pass, cached under
    keys of their own (a pooled sentence depends on its passage); the keys, passages first,
    and the indices of those that had to be embedded."""
    pool = getattr(embedder, "encode_passages_pooled", None)
    if pool is None:
        raise IndexUnusable(
            "RAG_SENTENCE_VECTORS=pooled needs an encoder that pools spans (RAG_ENCODER=onnx)"
        )
    texts = [p.embedding_text(settings.embed_context) for p in passages]
    # Where the passage's own text starts in what is embedded (after its headline and section).
    shift = [len(t) - len(p.text) for t, p in zip(texts, passages, strict=True)]
    spans: list[list[tuple[int, int]]] = [[] for _ in passages]
    for i, a, b in sentences:
        spans[i].append((a + shift[i], b + shift[i]))
    passage_keys = [embed_key(embedder.model_id, t) for t in texts]
    sentence_keys = [
        embed_key(f"{embedder.model_id}#pooled", f"{texts[i]}\x00{a + shift[i]}:{b + shift[i]}")
        for i, a, b in sentences
    ]
    keys = passage_keys + sentence_keys
    owner = [i for i, _, _ in sentences]
    missing = [
        i
        for i, key in enumerate(passage_keys)
        if key not in cache or any(sentence_keys[r] not in cache for r in _rows_of(owner, i))
    ]
    order = sorted(missing, key=lambda i: -len(texts[i]))
    step = max(1, CACHE_BATCH // 4)  # a passage brings its sentences: batches of like size
    for batch in _in_batches(order, step, show_progress=show_progress, unit="passage"):
        vectors, pooled = pool([texts[i] for i in batch], [spans[i] for i in batch])
        batch_keys = [passage_keys[i] for i in batch]
        rows = [vectors]
        for i, span_vectors in zip(batch, pooled, strict=True):
            batch_keys += [sentence_keys[r] for r in _rows_of(owner, i)]
            rows.append(span_vectors)
        cache.put(batch_keys, np.concatenate(rows))
    done = set(missing)
    todo = done | {len(passages) + r for r, i in enumerate(owner) if i in done}
    return keys, todo


def _rows_of(owner: list[int], passage: int) -> range:
    """The rows of `passage`'s sentences: sentences are stored grouped by passage, in order."""
    import bisect

    return range(bisect.bisect_left(owner, passage), bisect.bisect_right(owner, passage))


def sentence_rows(passages: list[Passage]) -> list[tuple[int, int, int]]:
    """(passage, start, end) of each passage's body sentences, grouped by passage, in order."""
    return [(i, a, b) for i, p in enumerate(passages) for a, b in body_sentences(p.text)]


def embed(
    passages: list[Passage],
    sentences: list[tuple[int, int, int]],
    embedder: Embedder,
    cache: EmbeddingCache,
    settings: Settings,
    show_progress: bool,
) -> tuple[np.ndarray, list[bytes], set[int]]:
    """The vectors of the passages, then of their sentences, embedding only what the cache
    lacks; their cache keys, and which of them had to be embedded (as rows of the vectors)."""
    if settings.sentence_vectors == "pooled":
        keys, todo = _embed_pooled(passages, sentences, embedder, cache, settings, show_progress)
    else:
        texts = [p.embedding_text(settings.embed_context) for p in passages] + [
            passages[i].text[a:b] for i, a, b in sentences
        ]
        keys = [embed_key(embedder.model_id, t) for t in texts]
        todo = _embed_missing(texts, keys, embedder, cache, show_progress=show_progress)
    if not keys:
        return np.zeros((0, embedder.dim), dtype=np.float32), keys, todo
    return np.stack([cache.get(k) for k in keys]).astype(np.float32, copy=False), keys, todo


def build_index(
    bulletins: list[Bulletin],
    embedder: Embedder,
    settings: Settings,
    *,
    show_progress: bool = False,
) -> BuildReport:
    """Parse, chunk, embed (reusing vectors of unchanged passages) and write a new build."""
    with build_lease(settings.index_path) as swept:
        report = _build(bulletins, embedder, settings, show_progress=show_progress)
    return dataclasses.replace(report, swept=tuple(swept))


def _build(
    bulletins: list[Bulletin], embedder: Embedder, settings: Settings, *, show_progress: bool
) -> BuildReport:
    import faiss

    started = time.perf_counter()
    parsed, passages = passages_of(bulletins, settings)
    if not passages:
        raise IndexUnusable("the bulletins hold no text to index")
    # Each sentence is embedded too: a question is often answered by one sentence that a
    # whole-passage vector dilutes, and the best sentence is what the reader is shown.
    sentences = sentence_rows(passages)
    cache = EmbeddingCache(settings.index_path, embedder.model_id, embedder.dim)
    vectors, keys, todo = embed(passages, sentences, embedder, cache, settings, show_progress)

    kind = _index_kind(settings, len(passages))
    faiss_index = dense_index(vectors[: len(passages)], kind)

    manifest = {
        "format": FORMAT,
        "package_version": version("bulletin-rag"),
        "model_id": embedder.model_id,
        "dim": embedder.dim,
        "chunker": chunker_settings(settings),
        "index_kind": kind,
        "files": {b.source: b.content_hash for b in bulletins},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "counts": {
            "files": len(bulletins),
            "articles": sum(len(pb.articles) for pb in parsed),
            "passages": len(passages),
        },
    }
    root = settings.index_path
    builds = root / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    staging = builds / f".{build_id}.partial"
    staging.mkdir()
    try:
        np.save(staging / "vectors.npy", vectors[: len(passages)])
        np.save(staging / "sentence_vectors.npy", vectors[len(passages) :])
        sentence_array = np.array(sentences, dtype=np.int64).reshape(-1, 3)
        np.save(staging / "sentences.npy", sentence_array)
        save_lexical(
            staging / LEXICAL_DIR,
            [p.text for p in passages],
            sentence_array,
            settings.lexical_tokenizer,
        )
        faiss.write_index(faiss_index, str(staging / "vectors.faiss"))
        with (staging / "passages.jsonl").open("w", encoding="utf-8") as out:
            for passage in passages:
                out.write(json.dumps(dataclasses.asdict(passage), ensure_ascii=False) + "\n")
        with (staging / "bulletins.json").open("w", encoding="utf-8") as out:
            json.dump(
                {pb.bulletin.doc_id: document_json(pb) for pb in parsed}, out, ensure_ascii=False
            )
        # Every file listed with its size and checksum, read back from disk; the manifest is
        # written last, so a build folder without one is never loaded.
        manifest["contents"] = describe(staging)
        manifest["checksum_algorithm"] = CHECKSUM
        (staging / MANIFEST).write_text(
            json.dumps(seal(manifest), indent=2, ensure_ascii=False), encoding="utf-8"
        )
        sync_tree(staging)  # the files' bytes are on disk before their build can be current
        final = builds / build_id
        staging.rename(final)
        sync_dir(builds)
        _point_current_at(root, final)
    except BaseException:
        # Nothing points at an unfinished build yet, so removing it loses nothing.
        shutil.rmtree(staging, ignore_errors=True)
        if (root / "current").resolve() != (builds / build_id).resolve():
            shutil.rmtree(builds / build_id, ignore_errors=True)
        raise
    _remove_old_builds(builds, keep=final)
    cache.compact(set(keys))
    embedded = sum(1 for i in todo if i < len(passages))
    report = report_of(parsed, len(passages), embedded, len(todo) - embedded, started, final)
    return dataclasses.replace(report, damaged_cache=tuple(cache.damaged))


def report_of(
    parsed: list[ParsedBulletin],
    passages: int,
    embedded: int,
    sentences_embedded: int,
    started: float,
    path: Path,
) -> BuildReport:
    """What a build did, with where every character of the bulletins went."""
    covered = [(pb.bulletin.source, coverage(pb)) for pb in parsed]
    return BuildReport(
        files=len(parsed),
        articles=sum(len(pb.articles) for pb in parsed),
        passages=passages,
        embedded=embedded,
        sentences_embedded=sentences_embedded,
        seconds=time.perf_counter() - started,
        path=path,
        characters=sum(c.characters for _, c in covered),
        in_passages=sum(c.in_passages for _, c in covered),
        labelled_only=sum(c.labelled_only for _, c in covered),
        unaccounted={s: c.unaccounted_characters for s, c in covered if c.unaccounted},
    )


def _index_kind(settings: Settings, n: int) -> str:
    if settings.index_kind != "auto":
        return settings.index_kind
    return "ivf" if n > settings.approximate_above else "flat"


def _point_current_at(root: Path, build: Path) -> None:
    link = root / "current"
    tmp = root / f".current-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(build.relative_to(root))
    os.replace(tmp, link)  # atomic: readers see the old build or the new one
    sync_dir(root)


def _remove_old_builds(builds: Path, keep: Path) -> None:
    done = sorted(
        (p for p in builds.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
    )
    current = (builds.parent / "current").resolve()
    for old in done[:-KEEP_BUILDS]:
        if old not in (keep, current):
            # Renamed out of sight first: a build killed while removing it leaves a hidden
            # folder the next sweep removes, not a half-deleted build that looks newest.
            going = old.with_name(f".{old.name}.removing")
            try:
                old.rename(going)
            except OSError:  # another build, finishing at the same time, took it first
                continue
            shutil.rmtree(going, ignore_errors=True)

