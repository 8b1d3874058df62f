"""The model's tokenizer run by SentencePiece, in a fifth of the memory `tokenizers` takes.

The folder's `tokenizer.json` (XLM-R's unigram vocabulary of 250,002 pieces) held 266 MB resident
once `tokenizers` had read it, the largest single part of the service; SentencePiece's own
runtime holds the same vocabulary in 59 MB and encodes seven times faster. The pieces, their
scores and the normalisation map are copied from `tokenizer.json` into a SentencePiece model
once (`write_pieces`), and `Pieces` reproduces what `tokenizers` does around the unigram model:
- special-token text in the input (<s>, </s>, <pad>, <unk>, <mask>) is that token;
- each stretch between them is normalised by the same precompiled map, runs of spaces become
  one, and "▁" is put in front unless the stretch already begins with a space (Metaspace,
  prepend "always");
- <s> … </s> around the whole.
Over the archive's passages and the eval's questions the ids are those of `tokenizers` except
where two segmentations score exactly alike (ＭＭＭ as M+MM or MM+M: 2 texts in 19,000), which
the two libraries break differently (tests/test_pieces.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

PIECES = "pieces.model"  # the SentencePiece model, of text already normalised
CHARSMAP = "pieces-normalizer.model"  # the normalisation map alone
SPECIALS = "pieces.json"  # special tokens, and <s> / </s>
_SPACES = re.compile(" {2,}")


def has_pieces(folder: Path) -> bool:
    """Whether `write_pieces` completed in `folder` (its last file is there)."""
    return all((folder / name).is_file() for name in (PIECES, CHARSMAP, SPECIALS))


def write_pieces(folder: Path) -> None:
    """Copy `folder/tokenizer.json`'s unigram model into a SentencePiece model beside it
    (each file written under a temporary name, then renamed: a reader never sees half a file;
    the special tokens last, so `has_pieces` means all are there)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    config = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    model = config["model"]
    if model.get("type") != "Unigram":
        raise ValueError(f"{folder / 'tokenizer.json'} is not a unigram model")
    charsmap = _precompiled_charsmap(config.get("normalizer"))
    piece = pb.ModelProto.SentencePiece  # type: ignore[attr-defined]
    added = {t["id"]: t for t in config.get("added_tokens", []) if t.get("special")}
    proto = pb.ModelProto()  # type: ignore[attr-defined]
    for i, (text, score) in enumerate(model["vocab"]):
        entry = proto.pieces.add()
        entry.piece, entry.score = text, score
        if i == model["unk_id"]:
            entry.type = piece.UNKNOWN
        elif i in added:
            entry.type = piece.CONTROL
        else:
            entry.type = piece.NORMAL
    spec = proto.trainer_spec
    spec.model_type = pb.TrainerSpec.UNIGRAM  # type: ignore[attr-defined]
    spec.vocab_size = len(model["vocab"])
    spec.unk_id = model["unk_id"]
    # Control pieces are the ids a caller adds itself; SentencePiece's own ids for them are
    # only checked for being distinct.
    spec.bos_id, spec.eos_id, spec.pad_id = -1, -1, -1
    # What `Pieces` runs: the map alone, then the pieces of text already mapped.
    only_map = pb.ModelProto()  # type: ignore[attr-defined]
    only_map.normalizer_spec.name = "user"
    only_map.normalizer_spec.precompiled_charsmap = charsmap
    only_map.normalizer_spec.add_dummy_prefix = False
    only_map.normalizer_spec.remove_extra_whitespaces = False
    only_map.normalizer_spec.escape_whitespaces = False
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = False
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    template = config["post_processor"]["special_tokens"]
    specials = {
        "bos": template["<s>"]["ids"][0],
        "eos": template["</s>"]["ids"][0],
        "added": [
            {"content": t["content"], "id": t["id"], "lstrip": t["lstrip"], "rstrip": t["rstrip"]}
            for t in added.values()
        ],
    }
    for name, data in (
        (PIECES, proto.SerializeToString()),
        (CHARSMAP, only_map.SerializeToString()),
        (SPECIALS, json.dumps(specials).encode()),
    ):
        # A name of its own, so two processes writing at once never write into one file.
        handle, staging = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(staging, folder / name)


def _precompiled_charsmap(normalizer: dict | None) -> bytes:
    """The precompiled normalisation map of a `tokenizers` normalizer (alone or in a sequence
    with the collapse of spaces, which `Pieces` does itself)."""
    steps = (normalizer or {}).get("normalizers", [normalizer] if normalizer else [])
    maps = [s["precompiled_charsmap"] for s in steps if s.get("type") == "Precompiled"]
    others = [s for s in steps if s.get("type") != "Precompiled"]
    if len(maps) != 1 or any(s != _COLLAPSE for s in others):
        raise ValueError(f"a normalizer this module does not reproduce: {normalizer}")
    return base64.b64decode(maps[0])


_COLLAPSE = {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}


class Pieces:
    """Token ids as the model's `tokenizers` pipeline gives them (see the module's docstring)."""

    def __init__(self, folder: Path) -> None:
        import sentencepiece as spm

        specials = json.loads((folder / SPECIALS).read_text(encoding="utf-8"))
        self.bos, self.eos = int(specials["bos"]), int(specials["eos"])
        self._normalize = spm.SentencePieceNormalizer(model_file=str(folder / CHARSMAP))
        # "▁" is put in front by hand (see `ids`).
        self._pieces = spm.SentencePieceProcessor(model_file=str(folder / PIECES))
        added = sorted(specials["added"], key=lambda t: -len(t["content"]))
        self._special_ids = {t["content"]: int(t["id"]) for t in added}
        patterns = [
            ("\\s*" if t["lstrip"] else "")
            + re.escape(t["content"])
            + ("\\s*" if t["rstrip"] else "")
            for t in added
        ]
        self._specials = re.compile("(" + "|".join(patterns) + ")") if patterns else None

    def ids(self, text: str) -> list[int]:
        """The ids of `text`, between <s> and </s>."""
        out = [self.bos]
        stretches = self._specials.split(text) if self._specials else [text]
        for n, stretch in enumerate(stretches):
            if n % 2:  # a special token, with the spaces it strips
                out.append(self._special_ids[stretch.strip()])
                continue
            normalised = _SPACES.sub(" ", self._normalize.normalize(stretch))
            if not normalised:
                continue
            if not normalised.startswith(" "):
                normalised = " " + normalised  # becomes the "▁" Metaspace puts in front
            out.extend(self._pieces.encode(normalised))
        out.append(self.eos)
        return out

    def ids_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.ids(t) for t in texts]
