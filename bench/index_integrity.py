"""What the index's integrity checks cost at start-up and in `rag index --verify`.

Times, on the index of RAG_INDEX_DIR (median of `--repeat` runs, files warm in the page cache):
the fast check loading makes (sizes, small files' checksums, array headers), the full check of
`--verify` (every checksum), the whole `load_index` (which includes the fast check), and the
search backend's start (BM25 postings read and checked for range and order).

Run: RAG_INDEX_DIR=index-archive .venv/bin/python bench/index_integrity.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from rag.index.backend import LocalBackend
from rag.index.integrity import check_files, is_bulk
from rag.index.store import current_build, load_index
from rag.settings import Settings


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    settings = Settings()
    folder, manifest = current_build(settings)
    contents = manifest["contents"]
    bulk = sum(e["size"] for n, e in contents.items() if is_bulk(n))
    total = sum(e["size"] for e in contents.values())
    fast = median_seconds(lambda: check_files(folder, contents, full=False), args.repeat)
    full = median_seconds(lambda: check_files(folder, contents, full=True), args.repeat)
    load = median_seconds(
        lambda: load_index(settings, model_id=manifest["model_id"], dim=manifest["dim"]),
        args.repeat,
    )
    index = load_index(settings, model_id=manifest["model_id"], dim=manifest["dim"])
    backend = median_seconds(lambda: LocalBackend(index, settings.lexical_tokenizer), args.repeat)
    print(
        json.dumps(
            {
                "index": str(folder),
                "passages": manifest["counts"]["passages"],
                "files": len(contents),
                "mib": round(total / 2**20, 1),
                "bulk_mib": round(bulk / 2**20, 1),
                "fast_check_s": round(fast, 3),
                "full_check_s": round(full, 3),
                "load_index_s": round(load, 3),
                "backend_s": round(backend, 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
