"""Searches under load while the index is rebuilt and reloaded: errors, latency, mixed answers.

Copies the corpus and an index (default `index`; `--index index-archive` with `--archive` for
the archive) into a temporary folder, never touching the originals, starts `rag serve` there on
a free local port, and keeps `--clients` searches in flight for `--seconds` while the index is
rebuilt with `rag index` and swapped in by POST /v1/admin/reload (`--rebuilds` times, one after
the other, starting in the first half of the time). Each rebuild first moves every bulletin's
text one line down (a blank line more at its top): the words and so the embeddings stay (the
rebuild reuses every vector), while every citation's offsets change, so each answer tells which
build it came from. An answer is mixed when no single build holds all the passages it cites.
Prints requests, errors, p50 and p99 latency, answers per build and mixed answers.

    .venv/bin/python bench/reliability.py                       # the page
    .venv/bin/python bench/reliability.py --archive --index index-archive \\
        --questions eval/archive_questions.jsonl                # after eval/archive/convert.py

tests/test_rebuild_under_load.py runs the same probe (`probe`) in CI, smaller, with the fake
embedder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]

# What a passage is known by in an answer: its citation and its text.
Signature = tuple


def passage_signatures(build: Path) -> frozenset[Signature]:
    """Every passage of a build (a folder of index/builds), as answers cite it."""
    out = set()
    with (build / "passages.jsonl").open(encoding="utf-8") as rows:
        for line in rows:
            p = json.loads(line)
            spans = tuple((s["start"], s["end"]) for s in p["spans"])
            out.add((p["doc_id"], p["headline"], p["section"], p["paragraph"], spans))
            out.add((p["doc_id"], p["headline"], p["section"], p["paragraph"], spans, p["text"]))
    return frozenset(out)


def answer_signatures(body: dict) -> list[Signature]:
    """What an answer cites: each result with its text, and the duplicates folded into it."""
    out: list[Signature] = []
    for result in body["results"]:
        for citation, text in [(result["citation"], result["text"])] + [
            (twin, None) for twin in result["duplicates"]
        ]:
            spans = tuple((s["start"], s["end"]) for s in citation["spans"])
            key = (
                citation["doc_id"],
                citation["headline"],
                citation["section"],
                citation["paragraph"],
                spans,
            )
            out.append(key if text is None else (*key, text))
    return out


@dataclass
class ProbeReport:
    """What the clients saw; `by_build` counts the answers only one build could give."""

    requests: int = 0
    errors: int = 0
    mixed: int = 0
    reloads: int = 0
    reloads_while_searching: int = 0  # those done before the clients stopped: what was probed
    latencies_ms: list[float] = field(default_factory=list)
    by_build: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)  # the first errors and mixed answers

    def note(self, what: str) -> None:
        if len(self.samples) < 5:
            self.samples.append(what[:300])

    def figures(self) -> dict[str, float | int | dict]:
        ordered = sorted(self.latencies_ms) or [0.0]
        return {
            "requests": self.requests,
            "errors": self.errors,
            "mixed": self.mixed,
            "reloads": self.reloads,
            "reloads_while_searching": self.reloads_while_searching,
            "p50_ms": round(statistics.median(ordered), 1),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
            "answers_only_from_build": dict(sorted(self.by_build.items())),
        }


def probe(
    base: str,
    current: Callable[[], Path],
    rebuild: Callable[[int], None],
    queries: Sequence[str],
    *,
    clients: int,
    seconds: float,
    rebuilds: int,
    headers: dict[str, str] | None = None,
) -> ProbeReport:
    """`clients` searching at `base` for `seconds` while `rebuild(k)` (k = 1…`rebuilds`), each
    followed by a reload, run one after the other in the first part of that time; `current()`
    is the build being served after each."""
    report = ProbeReport()
    builds = [passage_signatures(current())]
    answers: list[list[Signature]] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(seed: int) -> None:
        order = list(queries)
        random.Random(seed).shuffle(order)
        with httpx.Client(base_url=base, timeout=60, headers=headers) as http:
            for query in itertools.cycle(order):
                if time.monotonic() >= stop:
                    return
                started, failure = time.perf_counter(), ""
                try:
                    reply = http.post("/v1/search", json={"query": query, "top_k": 5})
                    body = reply.json() if reply.status_code == 200 else None
                    cited = answer_signatures(body) if body is not None else None
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                    reply, cited = None, None
                    failure = f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    report.requests += 1
                    if cited is None:
                        report.errors += 1
                        report.note(
                            failure if reply is None else f"{reply.status_code} {reply.text}"
                        )
                    else:
                        report.latencies_ms.append(elapsed)
                        answers.append(cited)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    try:
        with httpx.Client(base_url=base, timeout=120, headers=headers) as admin:
            start = stop - seconds
            for k in range(1, rebuilds + 1):
                # Rebuild k starts once the one before is reloaded, and not before its share of
                # the first half: a rebuild with the model takes 20-30 s under this load, and
                # the last build must still serve a while.
                not_before = start + seconds * k / (2 * (rebuilds + 1))
                time.sleep(max(0.0, not_before - time.monotonic()))
                rebuild(k)
                reloaded = admin.post("/v1/admin/reload")
                if reloaded.status_code != 200:
                    report.errors += 1
                    report.note(f"reload {k}: {reloaded.status_code} {reloaded.text}")
                    continue
                report.reloads += 1
                report.reloads_while_searching += time.monotonic() < stop
                builds.append(passage_signatures(current()))
    finally:
        for t in threads:
            t.join()
    for cited, holding in zip(answers, builds_holding(answers, builds), strict=True):
        if not holding:
            report.mixed += 1
            report.note(f"mixed: {cited[:2]}")
        elif len(holding) == 1:
            report.by_build[holding[0]] += 1
    return report


def builds_holding(
    answers: Sequence[Sequence[Signature]], builds: Sequence[frozenset[Signature]]
) -> list[list[int]]:
    """For each answer, the builds that hold every passage it cites (none: a mixed answer)."""
    return [
        [k for k, build in enumerate(builds) if all(c in build for c in cited)] for cited in answers
    ]


def shift_down(folder: Path) -> None:
    """One blank line more at the top of every bulletin under `folder`: the same words, every
    offset one further on."""
    for path in sorted(folder.rglob("*.txt")):
        path.write_text("\n" + path.read_text(encoding="utf-8"), encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(command: Sequence[str], env: dict[str, str], log: Path) -> Iterator[str]:
    """`command --port P` (a `rag serve`) on a free local port, once /readyz answers; its base."""
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--port", str(port)], env=env, cwd=REPO, stdout=out, stderr=out
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"the service exited: {log.read_text(errors='replace')}")
                try:
                    if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the service was not ready within 300 s")
                time.sleep(0.5)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rebuilds", type=int, default=2)
    parser.add_argument(
        "--root", default=str(REPO), help="where corpus/, archive/ and the index are"
    )
    parser.add_argument("--index", default="index", help="the index to copy (never modified)")
    parser.add_argument("--archive", action="store_true", help="the archive's pages too")
    parser.add_argument("--questions", default="eval/questions.jsonl")
    args = parser.parse_args()

    queries = [
        json.loads(line)["question"]
        for line in (REPO / args.questions).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    folders = ["corpus", "archive"] if args.archive else ["corpus"]
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        home = Path(tmp)
        root = Path(args.root)
        for name in folders:
            shutil.copytree(root / name, home / name)
        # Only what is current and the embedding cache: older builds are not needed.
        source = (root / args.index).resolve()
        (home / "index" / "builds").mkdir(parents=True)
        shutil.copytree(source / "embeddings", home / "index" / "embeddings")
        build = (source / "current").resolve()
        shutil.copytree(build, home / "index" / "builds" / build.name)
        (home / "index" / "current").symlink_to(Path("builds") / build.name)

        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        if "RAG_CACHE_DIR" in os.environ:
            env["RAG_CACHE_DIR"] = os.environ["RAG_CACHE_DIR"]
        env |= {"RAG_ROOT": str(home), "RAG_INDEX_DIR": str(home / "index")}
        headers = {}
        if os.environ.get("RAG_API_KEY"):
            env["RAG_API_KEY"] = os.environ["RAG_API_KEY"]
            headers["Authorization"] = f"Bearer {os.environ['RAG_API_KEY']}"
        rebuild_seconds: list[float] = []

        def index() -> None:
            subprocess.run(
                [sys.executable, "-m", "rag.cli", "index", *(str(home / n) for n in folders)],
                env=env,
                cwd=REPO,
                check=True,
                capture_output=True,
            )

        def rebuild(k: int) -> None:
            started = time.perf_counter()
            for name in folders:
                shift_down(home / name)
            index()
            rebuild_seconds.append(time.perf_counter() - started)

        # Built once before serving, so that the copy is what this version writes (an index of
        # another format is refused); its embedding cache makes that quick.
        index()
        command = [sys.executable, "-m", "rag.cli", "serve"]
        with serving(command, env, home / "server.log") as base:
            report = probe(
                base,
                lambda: (home / "index" / "current").resolve(),
                rebuild,
                queries,
                clients=args.clients,
                seconds=args.seconds,
                rebuilds=args.rebuilds,
                headers=headers,
            )
    figures = report.figures() | {"rebuild_s": [round(s, 1) for s in rebuild_seconds]}
    print(json.dumps({"clients": args.clients, "seconds": args.seconds, **figures}, indent=1))
    for sample in report.samples:
        print("sample:", sample, file=sys.stderr)


if __name__ == "__main__":
    main()
