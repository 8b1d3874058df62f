"""The int8 graph against the fp32 one, in one run: cosine of their vectors, and their speed.

Passages are drawn from the current index (the archive's, for the figures in eval/README.md),
questions from eval files; both encoders are the ones the product loads (`RAG_ENCODER=onnx` and
`onnx-int8`), timed alternately so that the machine's drift falls on both.
Run:
    RAG_INDEX_DIR=index-archive .venv/bin/python bench/int8_fidelity.py \\
        --questions eval/archive_questions.jsonl --questions eval/questions.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np

from rag.model.embed import load_embedder
from rag.settings import Settings


def passages(settings: Settings, count: int, seed: int) -> list[str]:
    """`count` passages of the current index, drawn at random."""
    rows = (settings.index_path / "current" / "passages.jsonl").read_text(encoding="utf-8")
    texts = [json.loads(line)["text"] for line in rows.splitlines() if line.strip()]
    random.Random(seed).shuffle(texts)
    return texts[:count]


def questions(files: list[str]) -> list[str]:
    return [
        json.loads(line)["question"]
        for f in files
        for line in Path(f).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def cosines(a: np.ndarray, b: np.ndarray) -> str:
    c = np.sum(a * b, axis=1)
    return f"mean {c.mean():.5f}  lowest {c.min():.5f}  1st percentile {np.quantile(c, 0.01):.5f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=400)
    parser.add_argument("--questions", action="append", default=[])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = Settings()
    fp32 = load_embedder(settings.model_copy(update={"encoder": "onnx"}))
    int8 = load_embedder(
        settings.model_copy(update={"encoder": "onnx-int8", "passage_encoder": "onnx-int8"})
    )
    texts = passages(settings, args.passages, args.seed)
    asked = questions(args.questions or ["eval/questions.jsonl"])
    print(f"{len(texts)} passages of {settings.index_path}, {len(asked)} questions")
    print(
        "passages, cosine int8 to fp32: ",
        cosines(fp32.encode_passages(texts), int8.encode_passages(texts)),
    )
    print(
        "questions, cosine int8 to fp32:",
        cosines(fp32.encode_queries(asked), int8.encode_queries(asked)),
    )
    alone: dict[str, list[float]] = {"onnx": [], "onnx-int8": []}
    batch: dict[str, list[float]] = {"onnx": [], "onnx-int8": []}
    for _ in range(args.rounds):
        for name, embedder in (("onnx", fp32), ("onnx-int8", int8)):
            for question in asked:
                started = time.perf_counter()
                embedder.encode_queries([question])
                alone[name].append(time.perf_counter() - started)
            started = time.perf_counter()
            embedder.encode_passages(texts)
            batch[name].append(time.perf_counter() - started)
    for name in alone:
        print(
            f"{name:10s} a question alone: median {statistics.median(alone[name]) * 1e3:6.2f} ms"
            f"   {len(texts)} passages: median {statistics.median(batch[name]):6.2f} s"
        )


if __name__ == "__main__":
    main()
