"""Near-duplicate passages: the same sentences printed twice fold into one result.

A bulletin's pull quotes are dropped when it is parsed; what remains is the same text in two
bulletins (a wire story several papers reprint, a notice quoted whole). The user should see it
once, with every place it appears.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

# Share of the shorter text's character pairs found in the longer one that makes them the same
# text. Measured on the bundled bulletin: its three pull quotes share 1.0 with the body; two
# distinct passages at most 0.35.
NEAR_DUPLICATE = 0.8
# Bits of a text's number beside its 42-bit character pair in one sort key.
TEXT_BITS = 16


def character_pairs(text: str) -> frozenset[int]:
    """The text's adjacent character pairs, whitespace ignored, each as one integer (the two
    code points side by side: they fit in 21 bits each). With `near_duplicates`, the
    definition `fold` computes for all its candidates at once."""
    squashed = "".join(text.split())
    return frozenset(_pair_codes(np.frombuffer(squashed.encode("utf-32-le"), np.uint32)).tolist())


def _pair_codes(points: np.ndarray) -> np.ndarray:
    """Each code point beside the next, as one 42-bit integer."""
    return (points[:-1].astype(np.uint64) << np.uint64(21)) | points[1:]


def near_duplicates(a: frozenset[int], b: frozenset[int]) -> bool:
    """Most of the shorter text's pairs are in the longer one."""
    shorter = min(len(a), len(b))
    return shorter > 0 and len(a & b) / shorter >= NEAR_DUPLICATE


def fold(
    ranked: Iterable[int], texts: Sequence[str] | Mapping[int, str], k: int
) -> list[tuple[int, list[int]]]:
    """The first `k` distinct candidates of `ranked`, each with the later candidates that
    repeat it. Every candidate given is looked at, also after `k` are found, so a copy ranked
    just below the k-th result is still folded in. `texts[i]` is candidate i's text (only the
    ranked ones are read)."""
    order = list(ranked)
    same = _near_duplicate_matrix([texts[i] for i in order])
    kept: list[tuple[int, list[int]]] = []
    rows: list[int] = []  # the kept candidates' places in `order`
    for place, i in enumerate(order):
        twin = next((n for n, row in enumerate(rows) if same[row, place]), None)
        if twin is not None:
            kept[twin][1].append(i)
        elif len(kept) < k:
            kept.append((i, []))
            rows.append(place)
    return kept


def _near_duplicate_matrix(texts: Sequence[str]) -> np.ndarray:
    """`near_duplicates` of every two of the texts at once, as a boolean matrix (the diagonal
    is not meaningful): the pairs two texts share counted by one product over the pairs that
    more than one text holds. Comparing the sets two by two took 1.5 ms of an archive search
    (55 candidates, up to 5 kept)."""
    n = len(texts)
    if n >= 1 << TEXT_BITS:
        raise ValueError(f"at most {(1 << TEXT_BITS) - 1} texts are folded at once, not {n}")
    squashed = ["".join(t.split()) for t in texts]
    points = np.frombuffer("".join(squashed).encode("utf-32-le"), dtype=np.uint32)
    owner = np.repeat(np.arange(n, dtype=np.uint64), [len(t) for t in squashed])
    within = owner[:-1] == owner[1:]  # neighbours in one text, not across two
    pairs = _pair_codes(points)
    # Pair (42 bits) then text, sorted: each text's distinct pairs, grouped by pair. A plain
    # sort, and a comparison with the neighbour, where np.unique hashes them.
    keyed = np.sort((pairs[within] << np.uint64(TEXT_BITS)) | owner[:-1][within])
    keyed = keyed[_starts(keyed)]
    text_of = (keyed & np.uint64((1 << TEXT_BITS) - 1)).astype(np.int64)
    sizes = np.bincount(text_of, minlength=n)
    pair_of = keyed >> np.uint64(TEXT_BITS)
    group = np.cumsum(_starts(pair_of)) - 1
    count = np.bincount(group)
    common = count[group] > 1  # a pair one text alone holds is shared with none
    columns = (np.cumsum(count > 1) - 1)[group[common]]
    held = np.zeros((n, int(columns.max(initial=-1)) + 1), dtype=np.float32)
    held[text_of[common], columns] = 1.0
    shared = held @ held.T  # exact: whole numbers far below 2**24
    shorter = np.minimum.outer(sizes, sizes)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (shorter > 0) & (shared / shorter >= NEAR_DUPLICATE)


def _starts(ordered: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted array starts."""
    starts = np.ones(len(ordered), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    return starts
