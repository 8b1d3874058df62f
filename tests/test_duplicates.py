"""Near-duplicate folding (rag.search.duplicates) on text of the bundled bulletin."""

from __future__ import annotations

from rag.search.duplicates import character_pairs, fold, near_duplicates

BODY = "到2028年，北京商业航天企业营业收入规模突破2000亿元，形成具有全球影响力的商业航天创新高地。"
QUOTE = "北京商业航天企业营业收入规模突破2000亿元"
OTHER = "海南环岛西线高速公路三亚至九所段日前贯通，全长一百余公里。"


def test_pairs_ignore_whitespace_and_count_each_pair_once() -> None:
    assert character_pairs("北京 北京") == character_pairs("北京北京")
    assert len(character_pairs("北京北京")) == 2  # 北京, 京北
    assert character_pairs("北") == frozenset() == character_pairs("")
    # Pairs of different characters never collide, also outside the basic plane.
    assert character_pairs("𠀀北") != character_pairs("北𠀀")


def test_a_quote_of_a_passage_is_its_near_duplicate_and_other_text_is_not() -> None:
    assert near_duplicates(character_pairs(BODY), character_pairs(QUOTE))
    assert not near_duplicates(character_pairs(BODY), character_pairs(OTHER))
    assert not near_duplicates(character_pairs(""), character_pairs(BODY))


def test_fold_keeps_k_distinct_and_gathers_later_copies() -> None:
    texts = [BODY, OTHER, QUOTE, "完全不同的第三段文字内容在这里。", BODY]
    folded = fold([0, 1, 2, 3, 4], texts, k=2)
    # Both copies of the body fold into it, also the one after the second result was found.
    assert folded == [(0, [2, 4]), (1, [])]


def _fold_pairwise(ranked, texts, k):
    """fold as its docstring defines it: each candidate against each kept one, by
    near_duplicates."""
    kept = []
    for i in ranked:
        pairs = character_pairs(texts[i])
        twin = next((entry for entry in kept if near_duplicates(entry[2], pairs)), None)
        if twin is not None:
            twin[1].append(i)
        elif len(kept) < k:
            kept.append((i, [], pairs))
    return [(i, copies) for i, copies, _ in kept]


def test_fold_finds_what_comparing_every_two_texts_finds() -> None:
    # fold counts the shared pairs of all candidates at once; on the bulletin's paragraphs, with
    # quotes and copies of them planted among them, it must agree with the pairwise test.
    import random

    from tests.conftest import BULLETIN

    paragraphs = [p for p in BULLETIN.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    rng = random.Random(7)
    folded_any = False
    for _ in range(60):
        texts = rng.sample(paragraphs, 20)
        for _ in range(10):  # quotes of every length, some all of a paragraph
            t = rng.choice(texts)
            start = rng.randrange(len(t))
            texts.append(" ".join(t[start : start + rng.randrange(1, 80)]))
        texts += ["", "北", " \n "]
        order = list(range(len(texts)))
        rng.shuffle(order)
        k = rng.randrange(1, 8)
        expected = _fold_pairwise(order, texts, k)
        assert fold(order, texts, k) == expected
        folded_any = folded_any or any(copies for _, copies in expected)
    assert folded_any  # the planted quotes were found, so the agreement means something
