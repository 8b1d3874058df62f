"""rag.model.smoothing: which products of a graph go int8, and smoothing their inputs."""

from __future__ import annotations

import numpy as np
import pytest

from rag.model.smoothing import calibration_texts, channel_peaks, factors_for, plan, smooth

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

WIDTH, OUT = 64, 48


def _graph(loud: float = 60.0):
    """x -> LayerNormalization -> y, which is both an output (as a residual is read) and the
    input of y @ w. The norm's gain makes channel 3 of y `loud` times the rest, as a
    transformer's outlier features are."""
    rng = np.random.default_rng(0)
    gain = np.ones(WIDTH, dtype=np.float32)
    gain[3] = loud
    inits = [
        numpy_helper.from_array(gain, "gain"),
        numpy_helper.from_array(np.zeros(WIDTH, dtype=np.float32), "bias"),
        numpy_helper.from_array(rng.normal(size=(WIDTH, OUT)).astype(np.float32), "w"),
    ]
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gain", "bias"], ["y"], name="norm", axis=-1),
        helper.make_node("MatMul", ["y", "w"], ["z"], name="product"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, WIDTH])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, WIDTH]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, OUT]),
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options)
    return session.run(["y", "z"], {"x": x})


def _inputs(seed: int, rows: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, WIDTH)).astype(np.float32)


def test_products_are_sorted_by_what_feeds_them():
    init = [numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), n) for n in "abcd"]
    nodes = [
        helper.make_node("SkipLayerNormalization", ["x", "x"], ["n"], domain="com.microsoft"),
        helper.make_node("MatMul", ["n", "a"], ["p"], name="fed_by_norm"),
        helper.make_node("Attention", ["n", "b"], ["att"], name="qkv", domain="com.microsoft"),
        helper.make_node("MatMul", ["att", "c"], ["q"], name="attention_output"),
        helper.make_node("BiasGelu", ["q", "x"], ["g"], domain="com.microsoft"),
        helper.make_node("MatMul", ["g", "d"], ["r"], name="feed_forward_output"),
        helper.make_node("MatMul", ["r", "x"], ["s"], name="no_weights"),  # both inputs vary
    ]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes, "g", [vi("x", TensorProto.FLOAT, [4, 4])], [vi("s", TensorProto.FLOAT, [4, 4])], init
    )
    found = plan(helper.make_model(graph))
    assert found.smoothed == ("fed_by_norm", "qkv")
    assert found.plain == ("attention_output",)
    assert found.kept == ("feed_forward_output",)


def test_smoothing_leaves_the_product_and_the_other_readers_as_they_were():
    model = _graph()
    x = _inputs(1)
    before = _run(model, x)
    peaks = channel_peaks(model, ["y"], [{"x": _inputs(seed)} for seed in range(4)])
    assert peaks["y"].shape == (WIDTH,) and peaks["y"].argmax() == 3
    smooth(model, ["product"], peaks)
    assert [n.op_type for n in model.graph.node] == ["LayerNormalization", "Mul", "MatMul"]
    after = _run(model, x)
    np.testing.assert_array_equal(after[0], before[0])  # the residual reads y itself
    np.testing.assert_allclose(after[1], before[1], rtol=1e-4, atol=1e-4)


def test_smoothed_int8_product_is_closer_to_fp32_than_plain_int8(tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    plain, smoothed = _graph(), _graph()
    peaks = channel_peaks(smoothed, ["y"], [{"x": _inputs(seed)} for seed in range(4)])
    smooth(smoothed, ["product"], peaks)
    x = _inputs(9, rows=256)  # not the calibration's inputs
    exact = _run(plain, x)[1]
    errors = []
    for name, model in (("plain", plain), ("smoothed", smoothed)):
        onnx.save(model, tmp_path / f"{name}.onnx")
        quantize_dynamic(
            tmp_path / f"{name}.onnx",
            tmp_path / f"{name}-int8.onnx",
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
        quantised = onnx.load(tmp_path / f"{name}-int8.onnx")
        assert "MatMulInteger" in {n.op_type for n in quantised.graph.node}
        errors.append(np.abs(_run(quantised, x)[1] - exact).mean())
    assert errors[1] < errors[0] / 3, errors


def test_factors_move_range_into_weights_and_leave_dead_channels_alone():
    peak = np.array([8.0, 1.0, 0.0, 2.0], dtype=np.float32)
    weight = np.array([[2.0, -1.0], [0.5, 0.25], [3.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    factors = factors_for(peak, weight, alpha=0.5)
    np.testing.assert_allclose(factors, [2.0, np.sqrt(1.0 / 0.5), 1.0, 1.0], rtol=1e-6)
    # After smoothing, input and weights share the range: sqrt(peak * row max) each.
    np.testing.assert_allclose(
        peak[:2] / factors[:2], np.abs(weight[:2] * factors[:2, None]).max(1)
    )


def test_calibration_is_bulletin_text_as_passages_and_as_questions():
    texts = calibration_texts({"query": "query: ", "passage": "passage: "})
    passages = [t for t in texts if t.startswith("passage: ")]
    questions = [t for t in texts if t.startswith("query: ")]
    assert len(passages) >= 30 and len(questions) >= 30
    assert any("商业航天" in t for t in passages)
    assert all(8 < len(q) - len("query: ") < 40 for q in questions)
