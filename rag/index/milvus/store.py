"""The index in Milvus: the collections one build is kept in, their schemas, and the calls the
build and the search make of them.

One build is four collections sharing a name, `<base>__a` (passages), `<base>__a_sentences`,
`<base>__a_terms` (how many texts hold each term, for BM25's IDF) and `<base>__a_documents`
(the bulletins' texts and outlines). Builds alternate between the sides `a` and `b`; readers
find the current side through the alias `<base>`, which a build moves only once its side is
complete, so a search sees the old build or the new one, never a mix (rag.index.milvus.build).

The same calls serve Milvus Lite in a file (`MilvusClient("./index/milvus.db")`) and a server or
cluster (`MilvusClient("http://host:19530")`). Milvus Lite takes no filter templates, so the
few strings a filter carries are quoted here (`quoted`), never pasted in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rag.index.backend import Scope
from rag.index.faults import BackendUnavailable
from rag.settings import Settings

SIDES = ("a", "b")
# Bumped when the collections' fields change: a side of another schema is made afresh, and a
# service refuses it as built for other settings.
SCHEMA = 2
# Seconds of a call made without the settings at hand (the build's own calls pass theirs): a
# call without a timeout to a hung server waits a minute or more.
DEFAULT_TIMEOUT = 30.0
# Collection property holding the build's manifest (JSON), and whether the side is complete.
MANIFEST_KEY = "rag_manifest"
# Rows per insert, per `in [...]` query, per page of an iterator: well under Milvus's limits
# (a 64 MB message, 16,384 rows a query).
BATCH = 512
PAGE = 4096
# The most rows one Milvus query returns.
QUERY_ROWS = 16_384
# VARCHAR limits, in bytes (Milvus counts UTF-8 bytes): a Chinese character is three.
TEXT_BYTES = 65_535
# A bulletin's JSON (its text and outline) is kept in parts of this many characters.
DOCUMENT_PART = 16_000
# Distinct terms a text may hold in its `terms` array (Milvus's largest array).
MAX_TERMS = 4096
# Collections must hold a vector field; the terms and documents collections hold this stub.
_STUB = [0.0, 0.0]


def names(base: str, side: str) -> dict[str, str]:
    """The collections of one side of `base`."""
    root = f"{base}__{side}"
    return {
        "passages": root,
        "sentences": f"{root}_sentences",
        "terms": f"{root}_terms",
        "documents": f"{root}_documents",
    }


def side_of(collection: str) -> str:
    return collection.rsplit("__", 1)[-1]


def is_failure(exc: BaseException) -> bool:
    """Whether `exc` is the store failing (and not a bug here): what pymilvus raises for the
    server's refusals, grpc for a deadline or a dead peer (pymilvus does not wrap every one),
    the OS for a socket. Imported when asked: pymilvus brings Milvus Lite, which loads jieba."""
    import grpc
    from pymilvus.exceptions import MilvusException

    return isinstance(exc, (MilvusException, grpc.RpcError, OSError, RuntimeError))


def connect(settings: Settings) -> Any:
    """A client of the configured Milvus, checked to answer; BackendUnavailable when not."""
    import logging

    from pymilvus import MilvusClient

    # pymilvus logs every failed call with its traceback, and a warning on each iterator over
    # Milvus Lite; what failed reaches the user once, as BackendUnavailable's one line.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

    uri = settings.milvus_address
    if "://" not in uri:
        # Milvus Lite makes the file, not its folder.
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
    try:
        client = MilvusClient(uri=uri, token=token, timeout=settings.milvus_timeout)
        client.list_collections(timeout=settings.milvus_timeout)
    except Exception as exc:  # pymilvus raises its own, grpc's and OS errors alike here
        raise BackendUnavailable(
            f"Milvus at {settings.milvus_shown} cannot be reached ({_reason(exc)})"
        ) from exc
    return client


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())[:300]


def unavailable(settings: Settings, exc: BaseException) -> BackendUnavailable:
    """What a failed call to Milvus becomes: one line naming the store and the failure."""
    return BackendUnavailable(f"Milvus at {settings.milvus_shown} failed ({_reason(exc)})")


def released(exc: BaseException) -> bool:
    """Whether Milvus refused a call because the collection is not loaded (a restarted Lite
    says "released", a server "not loaded"; both code 101)."""
    text = str(exc).lower()
    return getattr(exc, "code", None) == 101 or "released" in text or "not loaded" in text




def loaded(
    client: Any, collections: Iterable[str], timeout: float = DEFAULT_TIMEOUT, replicas: int = 1
) -> None:
    """Load collections into memory for search (Milvus opens them, and a restarted Milvus
    brings them back, released), in `replicas` copies on a cluster."""
    more = {"replica_number": replicas} if replicas > 1 else {}
    for collection in collections:
        state = client.get_load_state(collection, timeout=timeout).get("state")
        if "Loaded" not in str(state):
            client.load_collection(collection, timeout=timeout, **more)


def current_collection(client: Any, base: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """The passages collection the alias `base` points at; None before the first build."""
    aliases = client.list_aliases(timeout=timeout).get("aliases", [])
    if base not in aliases:
        return None
    return str(client.describe_alias(alias=base, timeout=timeout)["collection_name"])


def read_manifest(
    client: Any, collection: str, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any] | None:
    """The manifest a build left on `collection`; None when it has none or it is not JSON."""
    if not client.has_collection(collection, timeout=timeout):
        return None
    properties = client.describe_collection(collection, timeout=timeout).get("properties", {})
    try:
        manifest = json.loads(properties.get(MANIFEST_KEY, "null"))
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) else None


def write_manifest(
    client: Any, collection: str, manifest: dict[str, Any], timeout: float = DEFAULT_TIMEOUT
) -> None:
    client.alter_collection_properties(
        collection,
        properties={MANIFEST_KEY: json.dumps(manifest, ensure_ascii=False)},
        timeout=timeout,
    )


def quoted(value: str) -> str:
    """A string as a Milvus expression literal. Escaped the way Milvus's parser reads them (a
    backslash before a quote or a backslash); a control character cannot be written in one, so a
    value holding one (no doc id or region does) is replaced by one that nothing matches."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        value = "\ufffe"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quoted_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(quoted(v) for v in values) + "]"


def scope_expression(scope: Scope | None) -> str:
    """A scope's conditions as a Milvus filter expression ("" admits every passage). Dates are
    ISO prefixes as in rag.search.retriever.Filters: from "1998-01" admits every date from
    January 1998 on, to "1998-01" every date up to its end; an unknown date passes neither."""
    if scope is None:
        return ""
    parts = []
    if scope.doc_id is not None:
        parts.append(f"doc_id == {quoted(scope.doc_id)}")
    if scope.article is not None:
        parts.append(f"article == {int(scope.article)}")
    if scope.region is not None:
        parts.append(f"region == {quoted(scope.region)}")
    if scope.regions is not None:
        parts.append(f"region in {quoted_list(scope.regions)}")
    if scope.date_from is not None or scope.date_to is not None:
        parts.append('date != "unknown"')
    if scope.date_from is not None:
        parts.append(f"date >= {quoted(scope.date_from)}")
    if scope.date_to is not None:
        # date[:len(to)] <= to: below it, or starting with it.
        parts.append(f"(date <= {quoted(scope.date_to)} or date like {quoted(_like(scope.date_to))})")
    return " and ".join(parts)


def _like(prefix: str) -> str:
    # A LIKE pattern: % and _ in the prefix itself would be wildcards (ISO dates hold neither).
    return prefix.replace("%", "").replace("_", "") + "%"


def keys_in(field: str, keys: Sequence[str]) -> str:
    return f"{field} in {quoted_list(keys)}"


def query_in(
    client: Any,
    collection: str,
    field: str,
    keys: Sequence[str],
    output_fields: list[str],
    timeout: float,
) -> Iterator[dict[str, Any]]:
    """The rows whose `field` is one of `keys`. A primary key is asked BATCH at a time; a
    passage key of the sentences 64 at a time, so that their sentences (a few dozen each at
    most) stay under the rows one query returns, where more would be dropped unsaid."""
    size = BATCH if field == "key" else 64
    for start in range(0, len(keys), size):
        batch = list(keys[start : start + size])
        rows = client.query(
            collection,
            filter=keys_in(field, batch),
            output_fields=output_fields,
            limit=QUERY_ROWS,
            timeout=timeout,
        )
        if len(rows) >= QUERY_ROWS:
            raise RuntimeError(f"{collection}: more rows than one query returns for {field}")
        yield from rows


def every_row(
    client: Any, collection: str, output_fields: list[str], expression: str = ""
) -> Iterator[dict[str, Any]]:
    """Every row of `collection` (that `expression` admits), a page at a time."""
    pages = client.query_iterator(
        collection,
        batch_size=PAGE,
        filter=expression,
        output_fields=output_fields,
        timeout=DEFAULT_TIMEOUT,
    )
    try:
        while rows := pages.next():
            yield from rows
    finally:
        pages.close()


def passage_schema(client: Any, dim: int) -> Any:
    """Passages with their provenance, dense vector, our BM25 weights (`lex`, rag.index.sparse)
    and Milvus's own BM25 over the text with the jieba analyzer (`bm25`), and an index on every
    field a filter reads."""
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("passage_id", DataType.VARCHAR, max_length=1024)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=1024)
    schema.add_field("source", DataType.VARCHAR, max_length=4096)
    schema.add_field("seq", DataType.INT64)  # the passage's place among its bulletin's
    schema.add_field("article", DataType.INT64)
    schema.add_field("headline", DataType.VARCHAR, max_length=TEXT_BYTES)
    schema.add_field("section", DataType.VARCHAR, max_length=TEXT_BYTES)
    schema.add_field("paragraph", DataType.INT64)
    # The partition key: a region filter (and the place preference's leg) reads its own
    # partitions only.
    schema.add_field("region", DataType.VARCHAR, max_length=256, is_partition_key=True)
    schema.add_field("date", DataType.VARCHAR, max_length=64)
    schema.add_field("spans", DataType.JSON)
    # Milvus Lite knows the jieba tokenizer by name; the server's {"type": "chinese"} is the
    # same analyzer, which Lite refuses ("unknown tokenizer type").
    schema.add_field(
        "text",
        DataType.VARCHAR,
        max_length=TEXT_BYTES,
        enable_analyzer=True,
        analyzer_params={"tokenizer": "jieba"},
    )
    schema.add_field("bm25", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("lex", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("terms", DataType.ARRAY, element_type=DataType.INT64, max_capacity=MAX_TERMS)
    schema.add_field("length", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_function(
        Function(
            name="text_bm25",
            function_type=FunctionType.BM25,
            input_field_names=["text"],
            output_field_names=["bm25"],
        )
    )
    return schema


def sentence_schema(client: Any, dim: int) -> Any:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=80)
    schema.add_field("passage_key", DataType.VARCHAR, max_length=64)
    schema.add_field("number", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("lex", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("terms", DataType.ARRAY, element_type=DataType.INT64, max_capacity=MAX_TERMS)
    schema.add_field("length", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    return schema


def terms_schema(client: Any) -> Any:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("hash", DataType.INT64, is_primary=True)
    schema.add_field("passages", DataType.INT64)  # passages holding the term
    schema.add_field("sentences", DataType.INT64)
    schema.add_field("stub", DataType.FLOAT_VECTOR, dim=len(_STUB))
    return schema


def documents_schema(client: Any) -> Any:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=1100)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=1024)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=128)
    schema.add_field("part", DataType.INT64)
    schema.add_field("parts", DataType.INT64)  # of the document: a part missing is told
    schema.add_field("body", DataType.VARCHAR, max_length=TEXT_BYTES)
    schema.add_field("stub", DataType.FLOAT_VECTOR, dim=len(_STUB))
    return schema


def dense_index_type(settings: Settings, passages: int) -> str:
    """Exact search while the index is small, HNSW above RAG_APPROXIMATE_ABOVE passages, as the
    local index switches to IVF; RAG_MILVUS_DENSE_INDEX names another (a cluster's choices for
    tens of millions: README)."""
    if settings.milvus_dense_index != "auto":
        return settings.milvus_dense_index
    kind = settings.index_kind
    if kind == "auto":
        kind = "hnsw" if passages > settings.approximate_above else "flat"
    return {"flat": "FLAT", "hnsw": "HNSW", "ivf": "IVF_FLAT"}[kind]


# Build parameters per dense index type: HNSW's graph degree and breadth as the local HNSW's;
# SQ8 keeps a byte per dimension (a quarter of the float vectors' memory).
_DENSE_PARAMS: dict[str, dict[str, Any]] = {
    "FLAT": {},
    "HNSW": {"M": 32, "efConstruction": 200},
    "HNSW_SQ": {"M": 32, "efConstruction": 200, "sq_type": "SQ8"},
    "IVF_FLAT": {"nlist": 1024},
    "DISKANN": {},
}


def create_side(
    client: Any, settings: Settings, side: str, dim: int, index_type: str
) -> None:
    """The four collections of one side, empty, with their indexes."""
    found = names(settings.milvus_collection, side)
    # Strong: a build's recount and a service's catalog read, just after the writes, see them
    # all (a server's default, Bounded, may lag by seconds; Lite is always strong).
    layout: dict[str, Any] = {"num_shards": settings.milvus_shards, "consistency_level": "Strong"}
    schema = passage_schema(client, dim)
    index = client.prepare_index_params()
    index.add_index(
        "vector", index_type=index_type, metric_type="IP", params=_DENSE_PARAMS[index_type]
    )
    index.add_index("lex", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    index.add_index(
        "bm25",
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="BM25",
        params={"bm25_k1": 1.5, "bm25_b": 0.3},
    )
    for field in ("doc_id", "article", "region", "date"):
        index.add_index(field, index_type="INVERTED")
    client.create_collection(
        found["passages"],
        schema=schema,
        index_params=index,
        num_partitions=settings.milvus_partitions,
        **layout,
    )

    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="IP")
    index.add_index("lex", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    index.add_index("passage_key", index_type="INVERTED")
    client.create_collection(
        found["sentences"], schema=sentence_schema(client, dim), index_params=index, **layout
    )
    for name, schema in (("terms", terms_schema(client)), ("documents", documents_schema(client))):
        index = client.prepare_index_params()
        index.add_index("stub", index_type="FLAT", metric_type="L2")
        if name == "documents":
            index.add_index("doc_id", index_type="INVERTED")
        client.create_collection(
            found[name], schema=schema, index_params=index, consistency_level="Strong"
        )


def drop_side(client: Any, base: str, side: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    for collection in names(base, side).values():
        if client.has_collection(collection, timeout=timeout):
            client.drop_collection(collection, timeout=timeout)


def stub() -> list[float]:
    return list(_STUB)
