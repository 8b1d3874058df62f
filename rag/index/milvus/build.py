"""`rag index` into Milvus: write the side readers are not using, then move the alias to it.

A build parses and chunks as the local one does, then brings the standby side (rag.index.milvus.
store) to the new passages by difference: each passage is keyed by a hash of everything stored
of it, so an unchanged one is neither embedded nor written again, a changed one is a new key (the
old one deleted), and a removed bulletin's passages are deleted. A passage the standby lacks is
copied from the current side when that has it (embedded once, ever), else embedded, reusing the
local embedding cache. Last the alias moves, in one call: a search sees the old build or the new
one, and a build killed midway leaves the alias where it was. The side it was writing is marked
unfinished; the next build finishes it, recounting its terms from its rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable
from importlib.metadata import version
from typing import Any

import numpy as np

from rag.documents import Bulletin, Passage
from rag.index import sparse
from rag.index.build import (
    BuildReport,
    document_json,
    embed,
    passages_of,
    report_of,
    sentence_rows,
)
from rag.index.embed_cache import EmbeddingCache
from rag.index.milvus import store
from rag.index.milvus.rows import (
    TermChanges,
    passage_row,
    sentence_row,
    sequence_numbers,
    term_rows,
)
from rag.index.staging import build_lease
from rag.index.store import FORMAT, IndexUnusable, chunker_settings
from rag.model.embed import Embedder
from rag.settings import Settings

PASSAGE_FIELDS = [
    "key", "passage_id", "doc_id", "source", "seq", "article", "headline", "section",
    "paragraph", "region", "date", "spans", "text", "lex", "terms", "length", "vector",
]  # fmt: skip
SENTENCE_FIELDS = ["key", "passage_key", "number", "start", "end", "lex", "terms", "length", "vector"]


def expected(settings: Settings, embedder: Embedder) -> dict[str, Any]:
    """What a collection must have been built with to be searched with these settings."""
    return {
        "format": FORMAT,
        "milvus_schema": store.SCHEMA,
        "model_id": embedder.model_id,
        "dim": embedder.dim,
        "chunker": chunker_settings(settings),
        "lexical_tokenizer": settings.lexical_tokenizer,
    }


def passage_key(passage: Passage, seq: int, settings: Settings, model_id: str) -> str:
    """A hash of everything stored of the passage (its place among its bulletin's, `seq`, too:
    the catalog's order) and of what its vectors depend on."""
    record = {
        "passage": dataclasses.asdict(passage),
        "seq": seq,
        "model": model_id,
        "chunker": chunker_settings(settings),
        "lexical": settings.lexical_tokenizer,
    }
    blob = json.dumps(record, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:48]


def build_milvus(
    bulletins: list[Bulletin],
    embedder: Embedder,
    settings: Settings,
    *,
    show_progress: bool = False,
) -> BuildReport:
    """Index the bulletins into the standby side and make it current (see the module doc)."""
    with build_lease(settings.index_path) as swept:
        report = _build(bulletins, embedder, settings, show_progress=show_progress)
    return dataclasses.replace(report, swept=tuple(swept))


def _build(
    bulletins: list[Bulletin], embedder: Embedder, settings: Settings, *, show_progress: bool
) -> BuildReport:
    started = time.perf_counter()
    parsed, passages = passages_of(bulletins, settings)
    if not passages:
        raise IndexUnusable("the bulletins hold no text to index")
    for p in passages:
        if len(p.text.encode()) > store.TEXT_BYTES or len(p.headline.encode()) > store.TEXT_BYTES:
            raise IndexUnusable(f"{p.source}: passage {p.passage_id} is too long for Milvus")
    seq = sequence_numbers(passages)
    keys = [passage_key(p, n, settings, embedder.model_id) for p, n in zip(passages, seq, strict=True)]
    client = store.connect(settings)
    try:
        writer = _Writer(client, settings, embedder, passages, keys)
        added, removed, embedded, sentences_embedded = writer.write(show_progress)
        writer.write_documents({pb.bulletin.doc_id: pb for pb in parsed})
        manifest = {
            **expected(settings, embedder),
            "package_version": version("bulletin-rag"),
            "index_kind": store.dense_index_type(settings, len(passages)).lower(),
            # Not the files' hashes, as the local manifest lists them: a collection property
            # is kept in a cluster's metadata store, which takes a few MB at most.
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "counts": {
                "files": len(bulletins),
                "articles": sum(len(pb.articles) for pb in parsed),
                "passages": len(passages),
            },
            "changes": {"added": added, "removed": removed},
            "complete": True,
            **writer.statistics(),
        }
        writer.finish(manifest)
    except IndexUnusable:  # what the input is refused for (a RuntimeError too)
        raise
    except Exception as exc:
        if not store.is_failure(exc):  # a bug here, not the store: its traceback
            raise
        raise store.unavailable(settings, exc) from exc
    finally:
        client.close()
    return report_of(
        parsed, len(passages), embedded, sentences_embedded, started, settings.index_path
    )


class _Writer:
    """One build's writes into the standby side."""

    def __init__(
        self,
        client: Any,
        settings: Settings,
        embedder: Embedder,
        passages: list[Passage],
        keys: list[str],
    ) -> None:
        self.client, self.settings, self.embedder = client, settings, embedder
        self.passages, self.keys = passages, keys
        self.timeout = settings.milvus_timeout
        base = settings.milvus_collection
        current = store.current_collection(client, base, self.timeout)
        self.current = None
        current_bm25: dict[str, Any] = {}
        if current is not None:
            found = store.read_manifest(client, current, self.timeout)
            if found and all(found.get(k) == v for k, v in expected(settings, embedder).items()):
                self.current = store.names(base, store.side_of(current))
                current_bm25 = found.get("bm25", {})
        side = "a" if current is None or store.side_of(current) == "b" else "b"
        self.side = store.names(base, side)
        self.base, self.side_name = base, side
        self.retiring = current
        previous = store.read_manifest(client, self.side["passages"], self.timeout)
        _wait_out_of_service(previous, settings.milvus_switch_grace_seconds)
        self.index_kind = store.dense_index_type(settings, len(passages))
        # The same model, chunker and dense index type (a side is made with its index; another
        # type asked for, or auto's switch to HNSW as the archive grows, makes it afresh).
        fits = previous is not None and all(
            previous.get(k) == v for k, v in expected(settings, embedder).items()
        ) and previous.get("index_kind") == self.index_kind.lower()
        whole = all(client.has_collection(c, timeout=self.timeout) for c in self.side.values())
        if fits and whole and previous is not None and previous.get("complete"):
            # Rows removed behind a build's back would stay missing, as their passages are
            # present: a side whose rows are not those its manifest counts is built afresh.
            fits = _counted(client, self.side, previous, settings.milvus_timeout)
        if not fits or not whole:
            # Built with another model or chunker, or never: started afresh.
            store.drop_side(client, base, side, self.timeout)
            store.create_side(client, settings, side, embedder.dim, self.index_kind)
            previous = None
        store.loaded(client, self.side.values(), self.timeout)
        if self.current is not None:
            store.loaded(client, self.current.values(), self.timeout)
        # Unfinished until finish(): a build killed after this leaves a side the next one
        # recounts, never one that looks complete.
        self.recount = previous is None or not previous.get("complete", False)
        kept = {} if previous is None or self.recount else previous.get("bm25", {})
        self.stats: dict[str, Any] = {k: v for k, v in kept.items() if "average" not in k}
        # The average lengths BM25 divides by are the side's, fixed when it was made: its rows'
        # weights were computed with them, and rows copied from the current side with the
        # same ones (a new side adopts the current side's). A side made with no current one
        # takes its first rows' averages (_grow). They do not follow the archive as it grows:
        # a side made afresh (another model, chunker or index) takes new ones.
        made_with = (previous or {}).get("bm25") or current_bm25
        self.stats.update({k: v for k, v in made_with.items() if "average" in k})
        store.write_manifest(
            client,
            self.side["passages"],
            {
                **expected(settings, embedder),
                "index_kind": self.index_kind.lower(),
                "complete": False,
                "bm25": {k: v for k, v in self.stats.items() if "average" in k},
            },
            self.timeout,
        )

    def write(self, show_progress: bool) -> tuple[int, int, int, int]:
        """Delete what the new build lacks, add what the side lacks; (added, removed, passages
        embedded, sentences embedded)."""
        have = {
            row["key"]
            for row in store.every_row(self.client, self.side["passages"], ["key"])
        }
        wanted = dict(zip(self.keys, range(len(self.keys)), strict=True))
        gone = sorted(have - wanted.keys())
        todo = [i for i, key in enumerate(self.keys) if key not in have]
        term_changes = TermChanges()
        if gone:
            self._delete(gone, term_changes)
        copied = self._copy_from_current([self.keys[i] for i in todo], term_changes)
        fresh = [i for i in todo if self.keys[i] not in copied]
        embedded = sentences_embedded = 0
        if fresh:
            embedded, sentences_embedded = self._insert_fresh(fresh, term_changes, show_progress)
        self._update_terms(term_changes)
        return len(todo), len(gone), embedded, sentences_embedded

    def _delete(self, gone: list[str], changes: TermChanges) -> None:
        """Remove passages (and their sentences), taking their terms out of the counts."""
        for start in range(0, len(gone), store.BATCH):
            batch = gone[start : start + store.BATCH]
            if not self.recount:
                for row in store.query_in(
                    self.client, self.side["passages"], "key", batch, ["terms", "length"],
                    self.timeout,
                ):  # fmt: skip
                    changes.passages.subtract(row["terms"])
                    changes.passage_length -= row["length"]
                    changes.passage_count -= 1
                for row in store.query_in(
                    self.client, self.side["sentences"], "passage_key", batch,
                    ["terms", "length"], self.timeout,
                ):  # fmt: skip
                    changes.sentences.subtract(row["terms"])
                    changes.sentence_length -= row["length"]
                    changes.sentence_count -= 1
            # Sentences first: a build killed between the two leaves passages the next one
            # deletes again, never sentences of a passage gone.
            self.client.delete(
                self.side["sentences"],
                filter=store.keys_in("passage_key", batch),
                timeout=self.timeout,
            )
            self.client.delete(
                self.side["passages"], filter=store.keys_in("key", batch), timeout=self.timeout
            )

    def _copy_from_current(self, keys: list[str], changes: TermChanges) -> set[str]:
        """The passages the current side has, copied over as they are: their vectors and BM25
        weights were made by the build that wrote them."""
        if self.current is None or not keys:
            return set()
        copied: set[str] = set()
        for start in range(0, len(keys), store.BATCH):
            batch = keys[start : start + store.BATCH]
            rows = list(
                store.query_in(
                    self.client, self.current["passages"], "key", batch, PASSAGE_FIELDS,
                    self.timeout,
                )
            )  # fmt: skip
            if not rows:
                continue
            found = [r["key"] for r in rows]
            sentences = list(
                store.query_in(
                    self.client, self.current["sentences"], "passage_key", found,
                    SENTENCE_FIELDS, self.timeout,
                )
            )  # fmt: skip
            self._insert(rows, sentences, changes)
            copied.update(found)
        return copied

    def _insert_fresh(
        self, fresh: list[int], changes: TermChanges, show_progress: bool
    ) -> tuple[int, int]:
        """Embed (what the cache lacks) and insert the passages `fresh`, in batches."""
        how = self.settings.lexical_tokenizer
        chosen = [self.passages[i] for i in fresh]
        sentences = sentence_rows(chosen)
        cache = EmbeddingCache(self.settings.index_path, self.embedder.model_id, self.embedder.dim)
        vectors, _, todo = embed(
            chosen, sentences, self.embedder, cache, self.settings, show_progress
        )
        passage_terms = [sparse.Terms.of(p.text, how) for p in chosen]
        sentence_terms = [sparse.Terms.of(chosen[i].text[a:b], how) for i, a, b in sentences]
        # The average lengths BM25 divides by, over the side as it will be.
        self._grow(passage_terms, sentence_terms, changes)
        bm25 = self.stats
        by_passage: list[list[int]] = [[] for _ in chosen]
        for row, (i, _, _) in enumerate(sentences):
            by_passage[i].append(row)
        seq = sequence_numbers(self.passages)
        for start in range(0, len(chosen), store.BATCH):
            rows, sentence_batch = [], []
            for j in range(start, min(start + store.BATCH, len(chosen))):
                p, key, terms = chosen[j], self.keys[fresh[j]], passage_terms[j]
                rows.append(
                    passage_row(
                        p, key, seq[fresh[j]], terms, vectors[j], bm25["passage_average"]
                    )
                )
                for number, r in enumerate(by_passage[j]):
                    _, a, b = sentences[r]
                    sentence_batch.append(
                        sentence_row(
                            key, number, a, b, sentence_terms[r],
                            vectors[len(chosen) + r], bm25["sentence_average"],
                        )
                    )  # fmt: skip
            self._insert(rows, sentence_batch, changes)
        embedded = sum(1 for i in todo if i < len(chosen))
        return embedded, len(todo) - embedded

    def _grow(
        self, passages: list[sparse.Terms], sentences: list[sparse.Terms], changes: TermChanges
    ) -> None:
        """Average lengths for the rows about to be written: the side's own (see __init__), or,
        for a side made with no current one, over its rows and these."""
        if "passage_average" in self.stats and "sentence_average" in self.stats:
            return
        if self.recount:
            rows = list(store.every_row(self.client, self.side["passages"], ["length"]))
            sent = list(store.every_row(self.client, self.side["sentences"], ["length"]))
            p_len, p_n = sum(r["length"] for r in rows), len(rows)
            s_len, s_n = sum(r["length"] for r in sent), len(sent)
        else:
            p_len = self.stats["passage_length"] + changes.passage_length
            p_n = self.stats["passage_count"] + changes.passage_count
            s_len = self.stats["sentence_length"] + changes.sentence_length
            s_n = self.stats["sentence_count"] + changes.sentence_count
        p_len += sum(t.length for t in passages)
        p_n += len(passages)
        s_len += sum(t.length for t in sentences)
        s_n += len(sentences)
        self.stats["passage_average"] = p_len / max(1, p_n)
        self.stats["sentence_average"] = s_len / max(1, s_n)

    def _insert(
        self, rows: list[dict[str, Any]], sentences: list[dict[str, Any]], changes: TermChanges
    ) -> None:
        if not self.recount:
            for row in rows:
                changes.passages.update(row["terms"])
                changes.passage_length += row["length"]
                changes.passage_count += 1
            for row in sentences:
                changes.sentences.update(row["terms"])
                changes.sentence_length += row["length"]
                changes.sentence_count += 1
        # Sentences first, and by upsert: a passage the side holds has all its sentences, and a
        # build killed between the two writes them again over the same keys, not beside them.
        for start in range(0, len(sentences), store.BATCH):
            batch = sentences[start : start + store.BATCH]
            self.client.upsert(self.side["sentences"], batch, timeout=self.timeout)
        self.client.insert(self.side["passages"], rows, timeout=self.timeout)

    def _update_terms(self, changes: TermChanges) -> None:
        """How many passages and sentences hold each term, and the side's lengths: changed by
        what was added and deleted, or counted again from every row of an unfinished side."""
        collection = self.side["terms"]
        if self.recount:
            self._drop_orphans()
            self.client.delete(collection, filter="hash >= 0", timeout=self.timeout)
            passages: Counter[int] = Counter()
            sentences: Counter[int] = Counter()
            lengths = {"passage": [0, 0], "sentence": [0, 0]}
            for name, counter in (("passages", passages), ("sentences", sentences)):
                for row in store.every_row(self.client, self.side[name], ["terms", "length"]):
                    counter.update(row["terms"])
                    total = lengths[name[:-1]]
                    total[0] += row["length"]
                    total[1] += 1
            rows = term_rows(passages, sentences, set(passages) | set(sentences))
            self.stats.update(
                passage_length=lengths["passage"][0],
                passage_count=lengths["passage"][1],
                sentence_length=lengths["sentence"][0],
                sentence_count=lengths["sentence"][1],
            )
        else:
            hashes = sorted(
                {h for h, n in changes.passages.items() if n}
                | {h for h, n in changes.sentences.items() if n}
            )
            old_p: Counter[int] = Counter()
            old_s: Counter[int] = Counter()
            for start in range(0, len(hashes), store.BATCH):
                batch = hashes[start : start + store.BATCH]
                for row in self.client.query(
                    collection,
                    filter=f"hash in {batch}",
                    output_fields=["hash", "passages", "sentences"],
                    timeout=self.timeout,
                ):
                    old_p[row["hash"]] = row["passages"]
                    old_s[row["hash"]] = row["sentences"]
            new_p = Counter({h: old_p[h] + changes.passages[h] for h in hashes})
            new_s = Counter({h: old_s[h] + changes.sentences[h] for h in hashes})
            gone = [h for h in hashes if new_p[h] <= 0 and new_s[h] <= 0]
            for start in range(0, len(gone), store.BATCH):
                self.client.delete(collection, filter=f"hash in {gone[start : start + store.BATCH]}")
            rows = term_rows(new_p, new_s, set(hashes) - set(gone))
            for key, delta in (
                ("passage_length", changes.passage_length),
                ("passage_count", changes.passage_count),
                ("sentence_length", changes.sentence_length),
                ("sentence_count", changes.sentence_count),
            ):
                self.stats[key] = self.stats.get(key, 0) + delta
        # Counted afresh, the collection was emptied first: inserts, which Milvus does without
        # looking for the rows they would replace.
        write = self.client.insert if self.recount else self.client.upsert
        for start in range(0, len(rows), store.PAGE):
            write(collection, rows[start : start + store.PAGE], timeout=self.timeout)

    def _drop_orphans(self) -> None:
        """Delete sentences whose passage the side does not hold: what a build killed while
        writing may leave (a passage's sentences written, the passage not)."""
        held = {r["key"] for r in store.every_row(self.client, self.side["passages"], ["key"])}
        orphans = [
            r["key"]
            for r in store.every_row(self.client, self.side["sentences"], ["key", "passage_key"])
            if r["passage_key"] not in held
        ]
        for start in range(0, len(orphans), store.BATCH):
            batch = orphans[start : start + store.BATCH]
            self.client.delete(
                self.side["sentences"], filter=store.keys_in("key", batch), timeout=self.timeout
            )

    def statistics(self) -> dict[str, Any]:
        return {"bm25": dict(self.stats)}

    def write_documents(self, parsed: dict[str, Any]) -> None:
        """The bulletins' texts and outlines, for /v1/documents: those changed or new written,
        those removed deleted."""
        collection = self.side["documents"]
        hashes: dict[str, str] = {}
        parts: Counter[str] = Counter()
        wanted: dict[str, int] = {}
        for row in store.every_row(self.client, collection, ["doc_id", "content_hash", "parts"]):
            hashes[row["doc_id"]] = row["content_hash"]
            parts[row["doc_id"]] += 1
            wanted[row["doc_id"]] = row["parts"]
        # A document missing a part (a build killed between two batches) is written again.
        have = {d: h for d, h in hashes.items() if parts[d] == wanted[d]}
        have.update({d: "" for d in hashes if d not in have})
        stale = [d for d, h in have.items() if d not in parsed or parsed[d].bulletin.content_hash != h]
        for start in range(0, len(stale), store.BATCH):
            self.client.delete(
                collection, filter=store.keys_in("doc_id", stale[start : start + store.BATCH])
            )
        rows = []
        for doc_id, pb in parsed.items():
            if have.get(doc_id) == pb.bulletin.content_hash:
                continue
            body = json.dumps(document_json(pb), ensure_ascii=False)
            starts = range(0, len(body), store.DOCUMENT_PART)
            for part, at in enumerate(starts):
                rows.append(
                    {
                        "key": f"{doc_id}#{part}",
                        "doc_id": doc_id,
                        "content_hash": pb.bulletin.content_hash,
                        "part": part,
                        "parts": len(starts),
                        "body": body[at : at + store.DOCUMENT_PART],
                        "stub": store.stub(),
                    }
                )
        for start in range(0, len(rows), store.BATCH // 8):
            batch = rows[start : start + store.BATCH // 8]
            self.client.insert(collection, batch, timeout=self.timeout)

    def finish(self, manifest: dict[str, Any]) -> None:
        """Flush the side, mark it complete, and point the alias at it."""
        timeout = self.timeout
        for collection in self.side.values():
            self.client.flush(collection, timeout=timeout)
        store.write_manifest(self.client, self.side["passages"], manifest, timeout)
        aliases = self.client.list_aliases(timeout=timeout).get("aliases", [])
        if self.base in aliases:
            self.client.alter_alias(self.side["passages"], self.base, timeout=timeout)
        else:
            self.client.create_alias(self.side["passages"], self.base, timeout=timeout)
        if self.retiring is not None and self.retiring != self.side["passages"]:
            # When the side readers just left stopped being current: the next build waits
            # before writing into it (milvus_switch_grace_seconds).
            old = store.read_manifest(self.client, self.retiring) or {}
            store.write_manifest(self.client, self.retiring, {**old, "retired_at": time.time()})


def _counted(client: Any, side: dict[str, str], manifest: dict[str, Any], timeout: float) -> bool:
    """Whether the side holds as many passages and sentences as its manifest counts."""
    stats = manifest.get("bm25", {})
    for name, key in (("passages", "passage_count"), ("sentences", "sentence_count")):
        store.loaded(client, [side[name]], timeout)
        rows = client.query(side[name], filter="", output_fields=["count(*)"], timeout=timeout)
        if rows[0]["count(*)"] != stats.get(key):
            return False
    return True


def _wait_out_of_service(manifest: dict[str, Any] | None, grace: float) -> None:
    """Wait until the side this build is about to write has been out of service `grace`
    seconds: a service reading it follows the alias to the current side within seconds
    (api.state), and must not see this build's writes first."""
    retired = (manifest or {}).get("retired_at")
    if not isinstance(retired, (int, float)):
        return
    wait = retired + grace - time.time()
    if wait > 0:
        print(
            f"rag: waiting {wait:.0f} s for services to leave the build this one replaces "
            "(RAG_MILVUS_SWITCH_GRACE_SECONDS)",
            file=sys.stderr,
        )
        time.sleep(wait)
