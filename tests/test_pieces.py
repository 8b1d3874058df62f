"""The SentencePiece tokenizer (rag.model.pieces) gives the ids the `tokenizers` pipeline gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.model.pieces import Pieces, has_pieces, write_pieces
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO

HOSTILE = [
    "  a  b\t c\n d ", "", " ", "\n", "Ｈｅｌｌｏ　世界", "①②③", "e\u0301", "\u200b零宽",
    "ABC <s> x", "ABC<s>x", "a <mask> b", "a<mask>b", "<s>", "x</s>", " <unk> ", "<pad><pad>",
    "😀👍🏽", "\x00\x01控制", "a\u3000b", "\ufeffBOM", "ﬁ ligature", "全角　空格　　多", "tab\tsep",
    "\r\nCRLF\r\n", "<s", "s>", "<<s>>", "</s></s>", "x" * 3000, "１９９７年ＧＤＰ增长８．８％",
]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the default model's tokenizer.json, with the SentencePiece files written."""
    from rag.model.folder import ensure_default_model

    model = Path(ensure_default_model(Settings().cache_dir))
    out = tmp_path_factory.mktemp("pieces")
    shutil.copy(model / "tokenizer.json", out / "tokenizer.json")
    write_pieces(out)
    return out


def strings() -> list[str]:
    text = BULLETIN.read_text(encoding="utf-8")
    found = [text, *(line for line in text.splitlines() if line.strip())]
    for name in ("questions", "heldout", "archive_questions", "archive_heldout"):
        for line in (REPO / "eval" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            found.append("query: " + json.loads(line)["question"])
    return found + ["passage: " + s for s in found] + HOSTILE


@pytest.mark.model
def test_ids_are_those_of_tokenizers_on_the_page_the_questions_and_hostile_text(
    folder: Path,
) -> None:
    from tokenizers import Tokenizer

    theirs = Tokenizer.from_file(str(folder / "tokenizer.json"))
    theirs.no_padding()
    ours = Pieces(folder)
    texts = strings()
    assert len(texts) > 1000
    differing = [t for t in texts if ours.ids(t) != theirs.encode(t).ids]
    assert differing == []


@pytest.mark.model
def test_a_tie_between_segmentations_is_broken_the_other_way(folder: Path) -> None:
    """After 尽管, ＭＭＭ is M+MM or MM+M at the same score: the one kind of difference found
    over the archive's 16,589 passages (2 of them), kept in view so that a change shows."""
    from tokenizers import Tokenizer

    theirs = Tokenizer.from_file(str(folder / "tokenizer.json")).encode("尽管ＭＭＭ公司").ids
    ours = Pieces(folder).ids("尽管ＭＭＭ公司")
    assert ours != theirs and sorted(ours) == sorted(theirs) and len(ours) == len(theirs)


def test_a_tokenizer_this_module_cannot_reproduce_is_refused(tmp_path: Path) -> None:
    config = {"model": {"type": "BPE", "vocab": {}}, "normalizer": None}
    (tmp_path / "tokenizer.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not a unigram model"):
        write_pieces(tmp_path)
    assert not has_pieces(tmp_path) and list(tmp_path.iterdir()) == [tmp_path / "tokenizer.json"]


@pytest.mark.model
def test_an_export_without_pieces_tokenizes_with_tokenizers(tmp_path: Path) -> None:
    """A hub model whose tokenizer SentencePiece does not reproduce (WordPiece, BPE) has no
    pieces files: the encoder reads tokenizer.json with `tokenizers` and gives the same ids."""
    from rag.model.embed import load_embedder
    from rag.model.onnx_encoder import OnnxEmbedder

    served = load_embedder(Settings(encoder="onnx"))  # fp32 questions, as `plain` asks them
    export = served._folder  # type: ignore[union-attr]
    bare = tmp_path / "export"
    bare.mkdir()
    for name in ("encoder.json", "tokenizer.json"):
        shutil.copy(export / name, bare / name)
    for name in ("model.onnx", "word-table.npy"):
        (bare / name).symlink_to(export / name)
    assert not has_pieces(bare)
    plain = OnnxEmbedder(bare, model_id="intfloat/multilingual-e5-small")
    text = "query: 北京商业航天2028目标是什么"
    assert plain.token_ids(text) == served.token_ids(text)
    assert float(plain.encode_queries([text])[0] @ served.encode_queries([text])[0]) > 0.9999
