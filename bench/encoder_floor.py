"""How fast the encoder could ever be on this machine: the arithmetic a build and a question
need, beside the rate this machine's best fp32 matrix product reaches, and the encoders' own.

A build embeds every passage (led by its headline and section) and every sentence, each as the
model sees it (its tokens, with the prompt, truncated at 512), in batches cut from all of them
sorted by length: the least padding, so no more than `rag index` pads (it sorts within its cache
batches of 1,024); a question is encoded alone. Each text costs, per layer, 2 x tokens x (4 d^2 +
2 d f) operations in its linear products and 4 x tokens^2 x d in its attention (a multiply-add
counts as two), padding included. The floor is that count over the best rate numpy's float32
product (OpenBLAS, every core) reaches on the model's own shapes: an fp32 encoder under it would
do its products faster than the machine's BLAS does them alone. The encoders are timed on texts
drawn across the lengths, so their own rate shows how near the floor they run.
Run (any index's corpus; the archive's for the figures in bench/README.md):
    .venv/bin/python bench/encoder_floor.py corpus archive
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from rag.index.build import passages_of, sentence_rows
from rag.model.embed import Embedder, load_embedder
from rag.model.folder import ensure_default_model
from rag.pipeline import read_bulletins
from rag.settings import DEFAULT_MODEL_ID, Settings


def shape_of(export: Path) -> dict[str, int]:
    """Layers, width and feed-forward width of the model the export was made from."""
    encoder = json.loads((export / "encoder.json").read_text(encoding="utf-8"))
    config = json.loads((Path(encoder["model"]) / "config.json").read_text(encoding="utf-8"))
    return {
        "layers": config["num_hidden_layers"],
        "d": config["hidden_size"],
        "f": config["intermediate_size"],
        "max_tokens": encoder["max_tokens"],
    }


def operations(lengths: list[int], width: int, shape: dict[str, int]) -> float:
    """Floating-point operations of one forward pass over a batch padded to `width`."""
    d, f = shape["d"], shape["f"]
    per_layer = 2 * width * (4 * d * d + 2 * d * f) + 4 * width * width * d
    return float(len(lengths) * shape["layers"] * per_layer)


def batched(lengths: list[int], size: int, shape: dict[str, int]) -> float:
    """Operations of encoding texts of `lengths` in batches of `size`, shortest first."""
    ordered = sorted(lengths)
    return sum(
        operations(ordered[i : i + size], max(ordered[i : i + size]), shape)
        for i in range(0, len(ordered), size)
    )


def gemm_rate(shape: dict[str, int], rows: int, rounds: int = 20) -> float:
    """Best operations per second of numpy's float32 product on the model's three shapes."""
    rng = np.random.default_rng(0)
    d, f = shape["d"], shape["f"]
    best = 0.0
    for inner, outer in ((d, 3 * d), (d, f), (f, d)):
        a = rng.standard_normal((rows, inner), dtype=np.float32)
        b = rng.standard_normal((inner, outer), dtype=np.float32)
        a @ b  # warm
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
        best = max(best, 2.0 * rows * inner * outer / min(times))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="bulletins, as `rag index` takes them")
    parser.add_argument("--sample", type=int, default=256, help="texts timed per encoder")
    parser.add_argument("--questions", default="eval/archive_questions.jsonl")
    args = parser.parse_args()
    settings = Settings()
    if settings.model != DEFAULT_MODEL_ID:
        raise SystemExit(f"the floor is the default model's; RAG_MODEL is {settings.model!r}")
    embedder = load_embedder(
        settings.model_copy(update={"encoder": "onnx", "passage_encoder": None})
    )
    # The default model's export, as rag.model.embed finds it.
    export = ensure_default_model(settings.cache_dir) / "onnx"
    shape = shape_of(export)
    prompts = json.loads((export / "encoder.json").read_text(encoding="utf-8"))["prompts"]

    _, passages = passages_of(read_bulletins(args.paths, settings), settings)
    texts = [p.embedding_text(settings.embed_context) for p in passages] + [
        passages[i].text[a:b] for i, a, b in sentence_rows(passages)
    ]
    texts = list(dict.fromkeys(texts))  # the cache embeds each distinct text once
    cap = shape["max_tokens"]
    lengths = [min(cap, len(embedder.token_ids(prompts["passage"] + t))) for t in texts]
    build_ops = batched(lengths, settings.embed_batch_size, shape)

    questions = [
        json.loads(line)["question"]
        for line in Path(args.questions).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    q_lengths = [len(embedder.token_ids(prompts["query"] + q)) for q in questions]
    q_ops = [operations([n], n, shape) for n in q_lengths]

    rate = gemm_rate(shape, rows=settings.embed_batch_size * int(statistics.median(lengths)))
    q_rate = gemm_rate(shape, rows=int(statistics.median(q_lengths)))

    print(f"command: {' '.join(sys.argv)}")
    print(
        f"build: {len(texts):,} distinct texts ({len(passages):,} passages and their "
        f"sentences), {sum(lengths):,} tokens, median {statistics.median(lengths):.0f}; "
        f"{build_ops / 1e12:.1f} TFLOP in batches of {settings.embed_batch_size}"
    )
    print(
        f"numpy float32 product, best of the model's shapes: {rate / 1e9:.0f} GFLOP/s at "
        f"a batch's rows, {q_rate / 1e9:.0f} GFLOP/s at a question's"
    )
    print(f"fp32 floor for the build: {build_ops / rate:.0f} s (the target is 300 s)")
    alone_ms = statistics.median(q_ops) / q_rate * 1000
    # Questions asked together are encoded in batches, at the larger products' rate.
    cores = os.cpu_count() or 1
    core_ms = statistics.median(q_ops) / rate * 1000 * cores
    print(
        f"a question: median {statistics.median(q_lengths):.0f} tokens, "
        f"{statistics.median(q_ops) / 1e9:.2f} GFLOP; fp32 floor {alone_ms:.1f} ms alone; "
        f"batched, {core_ms:.1f} ms of the {cores} cores' time: at most "
        f"{1000 * cores / core_ms:.0f} questions/s encoded if the cores did nothing else"
    )

    # The encoders on texts drawn across the lengths, batched as a build batches them.
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    step = max(1, len(order) // args.sample)
    drawn = [order[i] for i in range(0, len(order), step)][: args.sample]
    sample_ops = batched([lengths[i] for i in drawn], settings.embed_batch_size, shape)
    graphs = {"onnx": embedder}
    graphs["onnx-int8"] = load_embedder(
        settings.model_copy(update={"encoder": "onnx-int8", "passage_encoder": "onnx-int8"})
    )
    for name, graph in graphs.items():
        graph.encode_passages([texts[i] for i in drawn[:32]])  # warm
        seconds = min(_timed(graph, [texts[i] for i in drawn]) for _ in range(3))
        achieved = sample_ops / seconds
        q_ms = []
        for q in questions:
            t = time.perf_counter()
            graph.encode_queries([q])
            q_ms.append((time.perf_counter() - t) * 1000)
        print(
            # int8's rate in the fp32 operations it stands for.
            f"{name:9}: {achieved / 1e9:.0f} GFLOP/s over {len(drawn)} texts "
            f"(the whole build at that rate: {build_ops / achieved:.0f} s); "
            f"a question alone, median {statistics.median(q_ms):.1f} ms"
        )


def _timed(embedder: Embedder, texts: list[str]) -> float:
    t = time.perf_counter()
    embedder.encode_passages(texts)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
