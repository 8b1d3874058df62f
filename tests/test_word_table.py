"""The word table out of the graph: the same vectors bit for bit, read row by row, and a
damaged table refused or made again."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from rag.model.onnx_encoder import CONFIG, EXPORT_FORMAT, _split_out_table, _table_whole
from rag.model.word_table import FILE, WordTable, WordTableError, split_graph

VOCAB, WIDTH = 50, 8
# The names quantize_dynamic gives the lookup of a model's word embeddings.
QUANTIZED = "transformer.embeddings.word_embeddings.weight_quantized"
DEQUANTIZED = "/transformer/embeddings/word_embeddings/Gather_output_0"


def quantised_lookup_model(seed: int = 0) -> onnx.ModelProto:
    """A graph shaped as the exported one begins: a uint8 table gathered by input_ids and
    dequantised, then added to a second input-dependent term (as position embeddings are)."""
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 256, size=(VOCAB, WIDTH), dtype=np.uint8)
    positions = rng.standard_normal((VOCAB, WIDTH)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", [QUANTIZED, "input_ids"], ["gathered"]),
        helper.make_node("DequantizeLinear", ["gathered", "scale", "zero"], [DEQUANTIZED]),
        helper.make_node("Gather", ["positions", "input_ids"], ["placed"]),
        helper.make_node("Add", [DEQUANTIZED, "placed"], ["token_states"]),
    ]
    graph = helper.make_graph(
        nodes,
        "lookup",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("token_states", TensorProto.FLOAT, None)],
        initializer=[
            numpy_helper.from_array(table, QUANTIZED),
            numpy_helper.from_array(np.array(0.0094324, dtype=np.float32), "scale"),
            numpy_helper.from_array(np.array(143, dtype=np.uint8), "zero"),
            numpy_helper.from_array(positions, "positions"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, feed: dict) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


@pytest.fixture
def split(tmp_path):
    whole = quantised_lookup_model()
    model, table, how = split_graph(quantised_lookup_model())
    np.save(tmp_path / FILE, table)
    return whole, model, WordTable(tmp_path, how.config()), tmp_path


def test_split_graph_gives_the_same_states_bit_for_bit(split):
    whole, model, table, _ = split
    ids = np.array([[0, 7, 7, 49, 3], [12, 1, 1, 1, 0]], dtype=np.int64)
    expected = run(whole, {"input_ids": ids})
    got = run(model, {"input_ids": ids, table.input: table.lookup(ids)})
    assert got.dtype == np.float32
    assert np.array_equal(got, expected)


def test_split_graph_holds_the_table_no_more(split):
    _, model, table, _ = split
    names = {i.name for i in model.graph.initializer}
    assert QUANTIZED not in names and "positions" in names
    assert table.input in {i.name for i in model.graph.input}
    assert not any(n.op_type == "DequantizeLinear" for n in model.graph.node)


def test_lookup_refuses_ids_outside_the_table(split):
    table = split[2]
    with pytest.raises(WordTableError, match="out of the table"):
        table.lookup(np.array([[VOCAB]]))
    with pytest.raises(WordTableError, match="out of the table"):
        table.lookup(np.array([[-1]]))


def test_a_table_cut_short_is_refused_and_not_whole(split):
    _, _, table, folder = split
    path = folder / FILE
    config = {"file": FILE, "input": table.input, "scale": 0.1, "zero_point": 0}
    (folder / CONFIG).write_text(json.dumps({"format": EXPORT_FORMAT - 1, "word_table": config}))
    assert not _table_whole(folder)  # an export of another format is made again
    (folder / CONFIG).write_text(json.dumps({"format": EXPORT_FORMAT, "word_table": config}))
    assert _table_whole(folder)
    path.write_bytes(path.read_bytes()[: -WIDTH * 3])
    assert not _table_whole(folder)  # so ensure_export exports again
    with pytest.raises(WordTableError, match=FILE):
        WordTable(folder, config)
    # Cut short under a table already open: its last rows are refused, never read as zeros.
    with pytest.raises(WordTableError, match="shorter"):
        table.lookup(np.array([[VOCAB - 1]]))
    assert table.lookup(np.array([[0]])).shape == (1, 1, WIDTH)


def test_a_missing_or_foreign_table_is_refused_by_name(tmp_path):
    config = {"file": FILE, "input": "x", "scale": 0.1, "zero_point": 0}
    with pytest.raises(WordTableError, match=FILE):
        WordTable(tmp_path, config)
    np.save(tmp_path / FILE, np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(WordTableError, match="not a uint8 table"):
        WordTable(tmp_path, config)
    (tmp_path / FILE).write_bytes(b"not numpy at all")
    with pytest.raises(WordTableError, match=FILE):
        WordTable(tmp_path, config)


def test_a_graph_without_a_quantised_lookup_is_refused():
    model = quantised_lookup_model()
    model.graph.node[0].input[0] = "positions"
    with pytest.raises(WordTableError, match="found 0"):
        split_graph(model)


def test_the_exported_table_is_whole(real_embedder):
    """The real export: its table file is whole, and a question reads a handful of rows."""
    folder = real_embedder._folder
    assert _table_whole(folder)
    ids = np.array([real_embedder.token_ids("query: 北京商业航天2028目标")])
    rows = real_embedder._table.lookup(ids)
    assert rows.shape == (*ids.shape, real_embedder.dim)
    assert np.isfinite(rows).all() and rows.std() > 0


def test_a_graph_without_a_lookup_it_knows_keeps_its_table(tmp_path):
    """Another model's lookup, named or quantised otherwise: the graph is left whole, and its
    export is whole without a table file."""
    model = quantised_lookup_model()
    model.graph.node[0].input[0] = "positions"  # a float lookup, as an unquantised model has
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    before = path.read_bytes()
    assert _split_out_table(path) is None
    assert path.read_bytes() == before and not (tmp_path / FILE).exists()
    (tmp_path / CONFIG).write_text(json.dumps({"format": EXPORT_FORMAT, "word_table": None}))
    assert _table_whole(tmp_path)
