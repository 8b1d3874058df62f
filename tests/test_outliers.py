"""rag.model.outliers: which products of a model stay fp32 in its int8 graph."""

from __future__ import annotations

import pytest

from rag.model.outliers import OUTLIER_RATIO, graph_nodes, outlier_products

torch = pytest.importorskip("torch")
# As wide as a small transformer: one feature among many, as outlier features are.
WIDTH = 384


class _Tokenizer:
    """Each character's code point mod 50 as an id, as a tokenizer's call returns them."""

    def __call__(self, texts, return_tensors):
        ids = torch.tensor([[ord(c) % 50 for c in texts[0]]])
        return {"input_ids": ids}


class _Model(torch.nn.Module):
    """Two feed-forward blocks; the second's input has one feature far above the rest, as a
    transformer's outlier features are."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(50, WIDTH)
        self.quiet = torch.nn.Linear(WIDTH, WIDTH)
        self.loud = torch.nn.Linear(WIDTH, WIDTH)

    def forward(self, input_ids):
        x = self.quiet(self.embed(input_ids))
        boost = torch.ones(WIDTH)
        boost[3] = 10 * OUTLIER_RATIO
        return self.loud(x * boost)


def test_the_product_whose_input_has_an_outlier_feature_is_found_and_only_it():
    found = outlier_products(_Model(), _Tokenizer())
    assert list(found) == ["loud"]
    assert found["loud"] > OUTLIER_RATIO


def test_module_paths_map_to_the_exporters_matmul_names_and_fused_ones_drop_out():
    matmuls = {
        "/transformer/encoder/layer.4/output/dense/MatMul",
        "/transformer/encoder/layer.10/output/dense/MatMul",
    }
    products = {
        "encoder.layer.4.output.dense": 583.0,
        "encoder.layer.10.output.dense": 250.0,
        "encoder.layer.2.attention.self.query": 300.0,  # inside a fused Attention node
    }
    assert graph_nodes(products, matmuls, "/transformer") == [
        "/transformer/encoder/layer.10/output/dense/MatMul",
        "/transformer/encoder/layer.4/output/dense/MatMul",
    ]
