"""Near-duplicate passages: the same sentences printed twice fold into one result.

A bulletin's pull quotes are dropped when it is parsed; what remains is the same text in two
bulletins (a wire story several papers reprint, a notice quoted whole). The user should see it
once, with every place it appears.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

# Share of the shorter text's character pairs found in the longer one that makes them the same
# text. Measured on the bundled bulletin: its three pull quotes share 1.0 with the body; two
# distinct passages at most 0.35.
NEAR_DUPLICATE = 0.8


def character_pairs(text: str) -> frozenset[int]:
    """The text's adjacent character pairs, whitespace ignored, each as one integer (the two
    code points side by side: they fit in 21 bits each). Three times faster than slicing the
    pairs out as strings, and a search folds its best 55 candidates (0.03 ms a passage)."""
    squashed = "".join(text.split())
    points = np.frombuffer(squashed.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    return frozenset(((points[:-1] << np.uint64(21)) | points[1:]).tolist())


def near_duplicates(a: frozenset[int], b: frozenset[int]) -> bool:
    """Most of the shorter text's pairs are in the longer one."""
    shorter = min(len(a), len(b))
    return shorter > 0 and len(a & b) / shorter >= NEAR_DUPLICATE


def fold(ranked: Iterable[int], texts: Sequence[str], k: int) -> list[tuple[int, list[int]]]:
    """The first `k` distinct candidates of `ranked`, each with the later candidates that
    repeat it. Every candidate given is looked at, also after `k` are found, so a copy ranked
    just below the k-th result is still folded in."""
    kept: list[tuple[int, list[int], frozenset[int]]] = []
    for i in ranked:
        pairs = character_pairs(texts[i])
        twin = next((entry for entry in kept if near_duplicates(entry[2], pairs)), None)
        if twin is not None:
            twin[1].append(i)
        elif len(kept) < k:
            kept.append((i, [], pairs))
    return [(i, copies) for i, copies, _ in kept]
