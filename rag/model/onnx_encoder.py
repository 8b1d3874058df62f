"""The model run by ONNX Runtime: the default encoder.

Two graphs are exported once, offline, from the same sentence-transformers folder torch loads
(`torch.onnx.export`, onnxruntime's fused transformer kernels, then its dynamic quantisation,
per channel: per-tensor scales lost a point of cosine), and saved together:
- `model.onnx` (RAG_ENCODER=onnx, and the passages' graph unless RAG_PASSAGE_ENCODER says
  otherwise): fp32 arithmetic; only the word-embedding table (250k rows, two thirds of the
  weights) is stored as int8, a lookup whose rounding no eval set notices (figures identical to
  torch's on the page sets). 180 MB where fp32 is 470 MB. The table is then taken out of both
  graphs into a file of its own, read row by row (rag.model.word_table): the session held it
  all in memory.
- `model-int8.onnx` (RAG_ENCODER=onnx-int8, RAG_PASSAGE_ENCODER=onnx-int8): two thirds of the
  matrix products in int8, their inputs smoothed first, the feed-forward outputs fp32
  (rag.model.smoothing). A cosine of 0.9998 to fp32, a question in 0.7 of fp32's time; its
  questions leave each eval set where fp32's did but for a near tie or two, so it is not the
  default (eval/README.md).
Serving needs neither torch nor transformers: the tokenizer is the folder's `tokenizer.json`,
run by SentencePiece (rag.model.pieces: 64 MB resident where the `tokenizers` library took 266);
`tokenizers` is read only for the character offsets of pooled sentence vectors.

sentence-transformers' own ONNX backend needs `optimum`, which pins an older transformers;
exporting the bare transformer and pooling here in numpy is a few lines and exact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.model.pieces import Pieces, has_pieces, write_pieces
from rag.model.smoothing import ALPHA, Plan, calibration_texts, channel_peaks, plan, smooth
from rag.model.word_table import FILE as TABLE_FILE
from rag.model.word_table import Split, WordTable, WordTableError, split_graph

# Bumped when the export changes (graph, quantisation, the files written), so an old export is
# made again rather than trusted.
EXPORT_FORMAT = 7
# The graph of each encoder (see above).
GRAPHS = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
CONFIG = "encoder.json"  # written last: an export folder without it is incomplete


class EncoderUnsupported(RuntimeError):
    """The model cannot run on ONNX Runtime here; the message says what to set instead."""


def export_folder(model: str, cache_dir: Path) -> Path:
    """Where the export of `model` (a folder or a hub name) lives."""
    path = Path(model)
    if path.is_dir():
        # Beside the folder would write into a user's model folder; the cache is ours.
        key = f"{path.resolve()}:{(path / 'config.json').stat().st_mtime_ns}"
    else:
        key = model
    digest = hashlib.sha1(f"{key}:{EXPORT_FORMAT}".encode()).hexdigest()[:12]
    return Path(cache_dir) / "onnx" / f"{path.name or 'model'}-{digest}"


def saturates_int8(cpu_flags: str) -> bool:
    """Whether ONNX Runtime's int8 products can saturate on a CPU with these flags: on x86 with
    AVX2 but neither VNNI nor AMX, its u8 x s8 kernels add pairs of products in 16 bits
    (vpmaddubsw), which overflows for eight-bit weights, and ONNX Runtime's quantisation
    guide asks for seven-bit weights there (reduce_range). Measured on an AVX2 EPYC, the
    page's passages against fp32: 0.9978 on average and 0.9931 at the lowest with eight bits,
    over 0.998 and 0.997 with seven (tests/test_model_fidelity.py); on the VNNI machines the
    int8 graph was measured on, eight bits gave 0.9990 and 0.9986."""
    flags = set(cpu_flags.split())
    return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


def _made_for_this_cpu(out: Path) -> bool:
    try:
        config = json.loads((out / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(config.get("seven_bit_weights", False)) == saturates_int8(_cpu_flags())


def _cpu_flags() -> str:
    """This CPU's feature flags as Linux lists them ("" elsewhere: no flags, no saturation)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return next((line for line in info if line.startswith("flags")), "")
    except OSError:
        return ""


def ensure_export(model: str, out: Path, *, show_progress: bool = False) -> Path:
    """`out`, exporting `model` (a sentence-transformers folder or name) into it first when no
    complete export is there, or when its int8 weights were made for another kind of CPU
    (saturates_int8: a cache carried to another machine, or made before the distinction)."""
    if (out / CONFIG).is_file() and _table_whole(out) and _made_for_this_cpu(out):
        if not has_pieces(out):  # an export made before the SentencePiece tokenizer
            _write_pieces_if_possible(out)
        return out
    return export(model, out, show_progress=show_progress)


def export(model: str, out: Path, *, show_progress: bool = False) -> Path:
    """Export and quantise `model` into `out` atomically (a staging folder renamed into place)."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    from rag.model.folder import replace_folder

    if show_progress:
        print(f"exporting {model} to ONNX int8 in {out} ...", file=sys.stderr, flush=True)
    seven_bit = saturates_int8(_cpu_flags())
    # Eager attention traces to the plain pattern onnxruntime's optimizer fuses (`_fuse`);
    # SDPA's traced graph it does not recognise. Same arithmetic either way.
    st = SentenceTransformer(model, device="cpu", model_kwargs={"attn_implementation": "eager"})
    pooling = _pooling(st)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        transformer = st[0].auto_model
        transformer.eval()  # type: ignore[union-attr]
        sample = st.tokenizer(
            ["query: 北京", "passage: 北京商业航天"], padding=True, return_tensors="pt"
        )
        fp32 = staging / "fp32.onnx"
        with torch.no_grad():
            torch.onnx.export(
                _traceable(transformer),
                (sample["input_ids"], sample["attention_mask"]),
                str(fp32),
                input_names=["input_ids", "attention_mask"],
                output_names=["token_states"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "token_states": {0: "batch", 1: "tokens"},
                },
                opset_version=17,
                # The TorchScript exporter: the dynamo one needs onnxscript and gains nothing here.
                dynamo=False,
            )
        _fuse(fp32, transformer.config)  # type: ignore[union-attr]
        smoothed = staging / "smoothed.onnx"
        products = _smoothed(fp32, smoothed, st)
        splits = []
        for graph, source, ops, exclude in (
            ("onnx", fp32, ["Gather"], []),
            ("onnx-int8", smoothed, ["Gather", "MatMul", "Attention"], list(products.kept)),
        ):
            quantize_dynamic(
                str(source),
                str(staging / GRAPHS[graph]),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=ops,
                nodes_to_exclude=exclude,
                # Seven-bit weights where this CPU's int8 kernels would saturate (see
                # saturates_int8); the word table, a lookup, keeps eight everywhere.
                reduce_range=graph == "onnx-int8" and seven_bit,
                # Shape inference cannot type through the fused (com.microsoft) nodes; every
                # tensor here is fp32.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
            splits.append(_split_out_table(staging / GRAPHS[graph]))
        if splits[0] != splits[1]:  # one table file serves both graphs
            raise EncoderUnsupported(f"the two graphs quantised the word table apart: {splits}")
        fp32.unlink()
        smoothed.unlink()
        # A model whose lookup is named or quantised otherwise keeps its table in the graph.
        table = splits[0].config() if splits[0] is not None else None
        st.tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        _write_pieces_if_possible(staging)
        config = {
            "format": EXPORT_FORMAT,
            "model": model,
            "dim": st.get_embedding_dimension(),
            "max_tokens": st.max_seq_length or 512,
            "pooling": pooling,
            "prompts": dict(st.prompts),
            "pad_id": st.tokenizer.pad_token_id or 0,
            "word_table": table,
            # The int8 graph's products, smoothed then int8 or left fp32 (rag.model.smoothing).
            "smoothed_products": list(products.smoothed),
            "smoothing_alpha": ALPHA,
            "fp32_products": list(products.kept),
            # The int8 graph's weights in seven bits, for a CPU whose int8 products saturate.
            "seven_bit_weights": seven_bit,
        }
        (staging / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False))
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _smoothed(fp32: Path, out: Path, st: Any) -> Plan:
    """Write to `out` the graph at `fp32` with the inputs of its layer-norm-fed products
    smoothed (rag.model.smoothing), their channels' ranges measured over the bundled page as
    `st` (the SentenceTransformer exported) tokenizes it; return how its products are split."""
    import onnx

    model = onnx.load(str(fp32))
    products = plan(model)
    inputs = {n.name: n.input[0] for n in model.graph.node}
    tensors = sorted({inputs[name] for name in products.smoothed})
    feeds = []
    for text in calibration_texts(dict(st.prompts)):
        ids = st.tokenizer([text], truncation=True, max_length=st.max_seq_length or 512)
        row = np.array(ids["input_ids"], dtype=np.int64)
        feeds.append({"input_ids": row, "attention_mask": np.ones_like(row)})
    smooth(model, products.smoothed, channel_peaks(model, tensors, feeds))
    onnx.save(model, str(out))
    return products


def _fuse(path: Path, config: Any) -> None:
    """Rewrite the fp32 graph at `path` with onnxruntime's fused transformer kernels (one
    Attention node a layer, bias-GELU, skip-layer-norm): archive passages 1.25x faster, a
    question 10% (bench/README.md), the vectors the same to six places (tests). The embedding
    layer is left unfused so that the word lookup stays a Gather the table is split from. A
    graph the optimizer cannot read is kept as exported: slower, never wrong."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.enable_embed_layer_norm = False
    try:
        fused = optimizer.optimize_model(
            str(path),
            model_type="bert",
            num_heads=int(getattr(config, "num_attention_heads", 0)),
            hidden_size=int(getattr(config, "hidden_size", 0)),
            optimization_options=options,
        )
    except Exception as e:  # any failure leaves the exported graph, which is correct
        print(f"warning: the ONNX graph was not fused ({e}); it runs unfused", file=sys.stderr)
        return
    fused.save_model_to_file(str(path))


def _split_out_table(path: Path) -> Split | None:
    """Take the word table out of the graph at `path` into its own file (rag.model.word_table);
    None, the graph left whole, when it holds no lookup this recognises."""
    import onnx

    try:
        model, table, split = split_graph(onnx.load(str(path)))
    except WordTableError:
        return None
    onnx.save(model, str(path))
    if not (path.parent / TABLE_FILE).exists():
        np.save(path.parent / TABLE_FILE, table)
    return split


def _table_whole(folder: Path) -> bool:
    """Whether the export is of this module's format and its word table the size its header
    says (an export of another format, a copy cut short, or a file lost, makes the export
    again rather than failing at the first question)."""
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        if config["format"] != EXPORT_FORMAT:
            return False
        if config["word_table"] is None:
            return True  # the table stayed in the graph
        table = np.load(folder / config["word_table"]["file"], mmap_mode="r")
        size = (folder / config["word_table"]["file"]).stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return size == table.offset + table.nbytes


def _write_pieces_if_possible(folder: Path) -> None:
    """The SentencePiece copy of the folder's tokenizer, when it is one `Pieces` reproduces (a
    hub model with a WordPiece or BPE tokenizer keeps `tokenizers`)."""
    with contextlib.suppress(ValueError, KeyError):
        write_pieces(folder)


def _pooling(st) -> str:  # st: SentenceTransformer
    """The model's pooling, when it is one this module computes (mean or CLS, then unit length)."""
    modules = [type(m).__name__ for m in st]
    pooler = st[1] if len(st) > 1 else None
    mode = getattr(pooler, "pooling_mode", None)
    if modules[1:] not in (["Pooling", "Normalize"], ["Pooling"]) or mode not in ("mean", "cls"):
        raise EncoderUnsupported(
            f"RAG_ENCODER=onnx runs models of a transformer, mean or CLS pooling and "
            f"normalisation; this one is {' → '.join(modules)} (pooling {mode!r}); "
            "set RAG_ENCODER=torch"
        )
    return str(mode)


def _traceable(transformer):  # -> torch.nn.Module
    """The transformer as a module of two positional inputs, as the exporter traces it
    (transformers 5 takes them by keyword only), returning the token states."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask):
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state

    return LastHiddenState()


class OnnxEmbedder:
    """An exported model on ONNX Runtime: float32 unit rows, as SentenceTransformerEmbedder."""

    def __init__(
        self,
        folder: Path,
        *,
        model_id: str,
        encoder: str = "onnx",
        passage_encoder: str | None = None,
        batch_size: int = 32,
    ) -> None:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        # Passages fp32 unless asked otherwise: an index is built once and read for years, and
        # its questions' graph can change without re-embedding it.
        passage_encoder = passage_encoder or "onnx"
        for graph in (encoder, passage_encoder):
            if graph not in GRAPHS:
                raise EncoderUnsupported(f"no ONNX graph {graph!r}; there are {sorted(GRAPHS)}")
        # The vectors differ a little from torch fp32's: an index knows which produced them.
        # Its passages' are what it holds; questions encoded by the other graph of the same
        # weights fall within a cosine of 0.9998 of them and can search it.
        self.model_id = f"{model_id}@{passage_encoder}"
        self.encoder, self.passage_encoder = encoder, passage_encoder
        self.dim = int(config["dim"])
        self.max_tokens = int(config["max_tokens"])
        self.batch_size = batch_size
        self._prompts: dict[str, str] = config["prompts"]
        self._pooling = config["pooling"]
        self._pad = int(config["pad_id"])
        self._folder = folder
        # SentencePiece when the model's tokenizer is a unigram one it reproduces (the default
        # model's); otherwise `tokenizers` itself.
        self._pieces = Pieces(folder) if has_pieces(folder) else None
        self._with_offsets: Any = None  # `tokenizers`, read when offsets are first needed
        self._sessions: dict[str, Any] = {}
        self._session_lock = threading.Lock()
        self._session(encoder)  # the questions' graph now; the passages' when first asked for
        self._table = WordTable(folder, config["word_table"]) if config["word_table"] else None

    def _session(self, graph: str) -> Any:
        """The ONNX Runtime session of `graph`, opened once: a service that only asks
        questions never loads the passages' graph. Found without the lock once open: every
        question comes here."""
        session = self._sessions.get(graph)
        if session is not None:
            return session
        with self._session_lock:
            if graph not in self._sessions:
                import onnxruntime as ort

                options = ort.SessionOptions()
                # ORT's default thread count already uses every core.
                options.log_severity_level = 3
                # Its threads sleep between runs instead of spinning: under concurrent searches
                # a spinning thread takes the core another search's Python needs (archive, 32
                # clients: 37.3 searches/s without spinning, 31.6 with; p99 976 against 1,228).
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._sessions[graph] = ort.InferenceSession(
                    str(self._folder / GRAPHS[graph]), options, providers=["CPUExecutionProvider"]
                )
            return self._sessions[graph]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query", self.encoder, show_progress=False)

    def encode_passages(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, "passage", self.passage_encoder, show_progress=show_progress)

    def encode_passages_pooled(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector and, from the same forward pass, a vector for each of its spans
        (code-point [start, end) into the text): the mean of the token states of the span's
        tokens, with the prompt's and the closing token's, as a span encoded alone would pool
        them. A span past the model's 512 tokens is encoded on its own."""
        prefix = self._prompts.get("passage", "")
        encodings = self._offsets_tokenizer().encode_batch([prefix + t for t in texts])
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        pooled = [np.zeros((len(s), self.dim), dtype=np.float32) for s in spans]
        alone: list[tuple[int, int]] = []
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            rows = [self._truncated(encodings[i].ids) for i in batch]
            states, mask = self._states(rows, self.passage_encoder)
            vectors[batch] = _unit(_pool(states, mask, self._pooling))
            for j, i in enumerate(batch):
                n = len(rows[j])
                # Token starts in the text: the prompt's and the specials' (at 0) are before it.
                starts = np.array([a for a, _ in encodings[i].offsets[:n]]) - len(prefix)
                starts[n - 1] = -1  # </s>, whose offset is 0 too once truncated
                kept = starts < 0
                truncated = n < len(encodings[i].ids)
                for r, (a, b) in enumerate(spans[i]):
                    inside = (starts >= a) & (starts < b)
                    if not inside.any() or (truncated and b > starts[n - 2]):
                        alone.append((i, r))
                        continue
                    chosen = states[j, :n][inside | kept]
                    pooled[i][r] = _unit(chosen.mean(axis=0, keepdims=True))[0]
        if alone:
            again = self.encode_passages([texts[i][slice(*spans[i][r])] for i, r in alone])
            for (i, r), vector in zip(alone, again, strict=True):
                pooled[i][r] = vector
        return vectors, pooled

    def token_ids(self, text: str) -> list[int]:
        """The ids the model sees for `text` (with <s> and </s>), for fidelity checks."""
        return self._ids(text)

    def _ids(self, text: str) -> list[int]:
        if self._pieces is not None:
            return self._pieces.ids(text)
        return list(self._offsets_tokenizer().encode(text).ids)

    def _offsets_tokenizer(self) -> Any:
        """The `tokenizers` pipeline: for where each token starts in the text (pooled sentence
        vectors), and the ids of a tokenizer SentencePiece does not reproduce. 266 MB for the
        default model's, so not read to serve it."""
        if self._with_offsets is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self._folder / "tokenizer.json"))
            tokenizer.no_padding()
            self._with_offsets = tokenizer
        return self._with_offsets

    def _encode(
        self, texts: Sequence[str], prompt: str, graph: str, *, show_progress: bool
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        prefix = self._prompts.get(prompt, "")
        rows = [self._truncated(self._ids(prefix + t)) for t in texts]
        # Batches of similar length: padding a short sentence to a long passage's length is
        # work thrown away.
        order = sorted(range(len(texts)), key=lambda i: len(rows[i]))
        batches = [order[b : b + self.batch_size] for b in range(0, len(order), self.batch_size)]
        if show_progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="embedding", unit="batch")
        for batch in batches:
            out[batch] = self._run([rows[i] for i in batch], graph)
        return out

    def _truncated(self, ids: list[int]) -> list[int]:
        """The first max_tokens ids, closed by the final special token, as sentence-transformers
        truncates (truncation is done here so that `token_ids` shows the whole text)."""
        return ids if len(ids) <= self.max_tokens else [*ids[: self.max_tokens - 1], ids[-1]]

    def _run(self, rows: list[list[int]], graph: str) -> np.ndarray:
        states, mask = self._states(rows, graph)
        return _unit(_pool(states, mask, self._pooling))

    def _states(self, rows: list[list[int]], graph: str) -> tuple[np.ndarray, np.ndarray]:
        """The token states of a batch of id rows (padded), and the padding mask."""
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, row in enumerate(rows):
            ids[j, : len(row)] = row
            mask[j, : len(row)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if self._table is not None:
            feed[self._table.input] = self._table.lookup(ids)
        (states,) = self._session(graph).run(None, feed)
        return states, mask


def _pool(states: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    if pooling == "cls":
        return states[:, 0]
    weights = mask[..., None].astype(np.float32)
    return (states * weights).sum(axis=1) / weights.sum(axis=1)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
