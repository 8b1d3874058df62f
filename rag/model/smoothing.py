"""Which matrix products of the int8 graph are int8, and the scales that let them be.

Dynamic int8 quantisation gives each product's input one scale for the whole tensor (its
weights get one per output channel). A few input channels far above the rest then round every
other channel to a handful of levels. SmoothQuant (Xiao et al., 2023) divides each input
channel j by a factor s_j and multiplies row j of the weights by the same factor: the product is
the same in exact arithmetic, and the range moves from the input, quantised per tensor, into the
weights, quantised per channel. s_j = max|x_j|^ALPHA / max|w_j|^(1 - ALPHA), where max|x_j| is
measured by running the fp32 graph over bulletin text (CALIBRATION, the bundled page) and the
division is one `Mul` node before the product.

The products of a fused BERT graph, by what feeds them (multilingual-e5-small, against the fp32
graph over 400 archive passages and the 299 tuning questions; eval/README.md, twelfth session):
- a layer norm (each layer's attention projections and feed-forward input, 24 of 36): smoothed,
  then int8. Alone in int8, the projections cost 0.0003 of cosine and the inputs 0.0005
  unsmoothed; smoothed, 0.0001 each.
- the attention (its output projection, 12): int8 as they are; alone they cost 0.00002.
- anything else, in this model the GELU (the feed-forward outputs, 12): fp32. Their inputs carry
  the model's outlier features (layers 0, 4 and 5 peak at 300-580 times their mean), and
  smoothing made the other nine worse (alone in int8: 0.9997 as they are, 0.9990 smoothed at
  ALPHA 0.5, 0.984 at 0.3).
All in int8, unsmoothed, the passages kept 0.9970 of cosine on average; with the three worst
feed-forward outputs fp32 (the previous graph) 0.9989; this way 0.9998, a question in 4.8 ms
where fp32 takes 7.9 and the previous int8 graph 3.5.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

# How much of each channel's range moves into the weights: 0.5 and 0.8 measured (0.9995 and
# 0.9998 of cosine with the feed-forward outputs fp32), 0.9 a little worse again (0.99974).
ALPHA = 0.8
CALIBRATION = "calibration.txt"  # beside this module: the bundled page's text
LAYER_NORMS = frozenset({"LayerNormalization", "SkipLayerNormalization"})
PRODUCTS = frozenset({"MatMul", "Attention"})


@dataclass(frozen=True)
class Plan:
    """The graph's products with a constant weight, by node name, as the int8 graph has them."""

    smoothed: tuple[str, ...]  # fed by a layer norm: smoothed, then int8
    plain: tuple[str, ...]  # fed by an attention node: int8 as they are
    kept: tuple[str, ...]  # everything else: fp32


def plan(model) -> Plan:  # model: onnx.ModelProto
    """Sort the products of `model` by the node that makes their input (see the module)."""
    constants = {t.name for t in model.graph.initializer}
    made_by = {out: node.op_type for node in model.graph.node for out in node.output}
    smoothed: list[str] = []
    plain: list[str] = []
    kept: list[str] = []
    for node in model.graph.node:
        if node.op_type not in PRODUCTS or node.input[1] not in constants:
            continue
        feeder = made_by.get(node.input[0])
        if feeder in LAYER_NORMS:
            smoothed.append(node.name)
        elif feeder == "Attention":
            plain.append(node.name)
        else:
            kept.append(node.name)
    return Plan(tuple(smoothed), tuple(plain), tuple(kept))


def calibration_texts(prompts: dict[str, str]) -> list[str]:
    """The bundled page as the model sees bulletin text: its paragraphs as passages, and its
    shorter sentences as questions (a question's inputs are a sentence's, not a passage's)."""
    text = resources.files("rag.model").joinpath(CALIBRATION).read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in text.split("\n\n") if len(p.strip()) > 10]
    sentences = [s for p in paragraphs for s in p.replace("\n", "").split("。") if 8 < len(s) < 40]
    return [prompts.get("passage", "") + p for p in paragraphs] + [
        prompts.get("query", "") + s for s in sentences
    ]


def channel_peaks(model, tensors: Sequence[str], feeds: Iterable[dict]) -> dict[str, np.ndarray]:
    """max |x_j| of each of `tensors` (inner dimension j) over the runs of `model` on `feeds`
    (one text each, so that no padding enters the figures)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    probe = type(model)()
    probe.CopyFrom(model)
    for name in tensors:
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    peaks: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(tensors, session.run(list(tensors), feed), strict=True):
            peak = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            peaks[name] = np.maximum(peaks[name], peak) if name in peaks else peak
    return peaks


def smooth(model, nodes: Sequence[str], peaks: dict[str, np.ndarray], alpha: float = ALPHA):
    """Rewrite `model` in place: each of `nodes` reads its input divided by the channels'
    factors, and its weight rows are multiplied by them (the module says how they are chosen).
    `peaks` holds max |x_j| of each node's input (channel_peaks)."""
    from onnx import numpy_helper

    weights = {t.name: t for t in model.graph.initializer}
    by_name = {node.name: node for node in model.graph.node}
    for name in nodes:
        node = by_name[name]
        tensor = weights[node.input[1]]
        weight = numpy_helper.to_array(tensor)
        factors = factors_for(peaks[node.input[0]], weight, alpha)
        tensor.CopyFrom(numpy_helper.from_array(weight * factors[:, None], tensor.name))
        _divide_input(model, node, factors)


def factors_for(peak: np.ndarray, weight: np.ndarray, alpha: float) -> np.ndarray:
    """s_j = max|x_j|^alpha / max|w_j|^(1 - alpha), for the weight's rows j (its input
    channels); a channel that never moved, or a row of zeros, keeps a factor of one."""
    rows = np.abs(weight).max(axis=1)
    live = (peak > 0) & (rows > 0)
    factors = np.ones(peak.shape, dtype=np.float64)
    factors[live] = peak[live] ** alpha / rows[live] ** (1 - alpha)
    return factors.astype(np.float32)


def _divide_input(model, node, factors: np.ndarray) -> None:
    """Put `Mul(input, 1 / factors)` before `node`, which reads it instead of its input (other
    readers of the input keep it as it was: a layer norm's output is the residual too)."""
    from onnx import helper, numpy_helper

    scale = f"{node.name}/smooth_factors"
    divided = f"{node.name}/smoothed_input"
    model.graph.initializer.append(numpy_helper.from_array(1 / factors, scale))
    mul = helper.make_node("Mul", [node.input[0], scale], [divided], name=f"{node.name}/smooth")
    node.input[0] = divided
    nodes = model.graph.node
    at = next(i for i, n in enumerate(nodes) if n.name == node.name)
    nodes.insert(at, mul)
