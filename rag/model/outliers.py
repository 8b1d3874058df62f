"""Which matrix products of a transformer stay fp32 in its int8 graph.

Dynamic int8 quantisation gives each product's input one scale for the whole tensor. A product
whose input has a few huge values (the outlier features of a transformer's feed-forward output)
then rounds every ordinary value to a handful of levels. In multilingual-e5-small three of the
36 products have them (feed-forward outputs of layers 0, 4 and 5: a peak 300-580 times the
mean magnitude; every other product at most 160). Measured on 600 archive passages against
fp32: all 36 in int8, cosine 0.9969 mean, 0.9948 lowest; those three kept fp32, 0.9989 and
0.9979, at 1.76x fp32's speed where all in int8 is 1.88x (bench/README.md). Quantising layer
4's product alone moved the mean cosine more than all other 35 together.

The inputs are measured by running the torch model once over a few sentences of bulletin
text: the outliers are the model's, not the text's, and show on any of it.
"""

from __future__ import annotations

from typing import Any

# A product whose input peaks at more than this many times its mean magnitude stays fp32.
OUTLIER_RATIO = 200.0
SAMPLES = (
    "passage: 北京将建设具有全球影响力的商业航天创新发展高地，到2028年产业能级明显提升。",
    "passage: 国务院总理李鹏今天在人民大会堂会见了日本客人，双方就两国经贸合作交换了意见。",
    "passage: 全省粮食总产量达到１２５０万吨，比上年增长百分之五点三。",
    "query: what is Beijing's 2028 target for commercial space",
    "query: 宁夏打算怎样让管工厂的公务员变得更懂行",
)


def outlier_products(transformer: Any, tokenizer: Any) -> dict[str, float]:
    """The linear layers of `transformer` (a torch module, by module path) whose input peaks
    above OUTLIER_RATIO times its mean magnitude over SAMPLES, with that ratio."""
    import torch

    peaks: dict[str, list[float]] = {}
    means: dict[str, list[float]] = {}

    def watch(name: str) -> Any:
        def record(_module: Any, inputs: tuple[Any, ...], _output: Any) -> None:
            x = inputs[0].detach().abs()
            peaks.setdefault(name, []).append(float(x.max()))
            means.setdefault(name, []).append(float(x.mean()))

        return record

    hooks = [
        module.register_forward_hook(watch(name))
        for name, module in transformer.named_modules()
        if isinstance(module, torch.nn.Linear)
    ]
    try:
        with torch.no_grad():
            for text in SAMPLES:  # one at a time: no padding in the statistics
                transformer(**tokenizer([text], return_tensors="pt"))
    finally:
        for hook in hooks:
            hook.remove()
    ratios = {
        name: max(peaks[name]) / (sum(means[name]) / len(means[name]))
        for name in peaks
        if sum(means[name]) > 0
    }
    return {name: ratio for name, ratio in ratios.items() if ratio > OUTLIER_RATIO}


def graph_nodes(products: dict[str, float], matmuls: set[str], prefix: str) -> list[str]:
    """The graph's MatMul nodes for these module paths: the exporter names the product of
    `encoder.layer.4.output.dense` under `prefix` `/transformer` as
    `/transformer/encoder/layer.4/output/dense/MatMul`. A product folded into a fused node
    (the attention's projections) has no MatMul of its own and is left out."""
    named = {f"{prefix}/" + "/".join(_module_parts(path)) + "/MatMul" for path in products}
    return sorted(named & matmuls)


def _module_parts(path: str) -> list[str]:
    """`encoder.layer.4.output.dense` as the exporter's scope parts: encoder, layer.4, output,
    dense (a numeric part is an index into the part before it)."""
    parts: list[str] = []
    for part in path.split("."):
        if part.isdigit() and parts:
            parts[-1] = f"{parts[-1]}.{part}"
        else:
            parts.append(part)
    return parts
