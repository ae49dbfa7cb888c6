"""LightGBM boosters in ONNX, as exact as the native model.

- Thresholds: onnxmltools writes LightGBM's float64 thresholds as float32, so a value between the
  two went the other way; the graph takes float64 inputs and the exact `nodes_values_as_tensor`.
- Classifiers: a float32 probability near 1 loses most of its distance to 1, which calibration
  magnifies; the trees output raw margins and the sigmoid or softmax runs in float64.
- Quantile intervals: two more boosters on the same features end in one `interval` [N, 2].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.common.tabular import OPSET

ENSEMBLES = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")


def register_lightgbm() -> None:
    """onnxmltools' LightGBM converters, registered with skl2onnx (idempotent)."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for model, shapes, options in (
        (LGBMClassifier, calculate_linear_classifier_output_shapes, classifier),
        (LGBMRegressor, calculate_linear_regressor_output_shapes, {"split": None}),
    ):
        alias = f"LightGbm{model.__name__}"
        update_registered_converter(model, alias, shapes, convert_lightgbm, options=options)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def exact_thresholds(graph: Any, booster: Any) -> None:
    """Give the (one) tree ensemble of `graph` its booster's float64 thresholds."""
    from onnx import helper, numpy_helper

    exact = _thresholds(booster)
    node = next(n for n in graph.node if n.op_type in ENSEMBLES)
    attrs = _attrs(node)
    keys = ("nodes_treeids", "nodes_featureids", "nodes_modes", "nodes_values")
    values = []
    for tree, feature, mode, value in zip(*(attrs[k] for k in keys), strict=True):
        t64 = exact.get((tree, feature, value)) if mode == b"BRANCH_LEQ" else value
        if t64 is None:
            raise ValueError(f"tree {tree}: no float64 threshold for feature {feature} at {value}")
        values.append(t64)
    weights = "class_weights" if "class_weights" in attrs else "target_weights"
    for name, array in (("nodes_values", values), (weights, attrs[weights])):
        node.attribute.remove(next(a for a in node.attribute if a.name == name))
        tensor = numpy_helper.from_array(np.asarray(array, dtype=np.float64))
        node.attribute.append(helper.make_attribute(f"{name}_as_tensor", tensor))


def _thresholds(booster: Any) -> dict[tuple[int, int, float], float]:
    """(tree, feature, float32 threshold) → float64 threshold for every numerical split."""
    out: dict[tuple[int, int, float], float] = {}
    for tree_id, tree in enumerate(booster.dump_model()["tree_info"]):  # as the graph numbers them
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if node.get("decision_type") == "<=":
                t64 = float(node["threshold"])
                with np.errstate(over="ignore"):  # 1e300 thresholds are inf in float32
                    out[(tree_id, int(node["split_feature"]), float(np.float32(t64)))] = t64
            stack.extend(node[k] for k in ("left_child", "right_child") if k in node)
    return out


def threshold_edges(booster: Any, most: int = 32) -> dict[int, list[float]]:
    """Feature → up to `most` of its split thresholds, each with one float64 and one float32 step
    either side (where rounding would bite)."""
    by_feature: dict[int, set[float]] = {}
    for (_, feature, _), value in _thresholds(booster).items():
        by_feature.setdefault(feature, set()).add(value)
    out = {}
    for feature, thresholds in by_feature.items():
        t64 = np.array(sorted(thresholds))[:: max(1, len(thresholds) // most)]
        with np.errstate(over="ignore"):  # LightGBM's 1e300 "every finite value" thresholds
            t32, inf32 = t64.astype(np.float32), np.float32(np.inf)
            up32, down32 = np.nextafter(t32, inf32), np.nextafter(t32, -inf32)
        steps = [t64, np.nextafter(t64, np.inf), np.nextafter(t64, -np.inf), t32, up32, down32]
        values = np.concatenate([np.asarray(x, dtype=np.float64) for x in steps])
        # Only numbers a caller can send: serving takes finite values within float32's range.
        sendable = np.isfinite(values) & (np.abs(values) <= np.finfo(np.float32).max)
        out[feature] = [float(v) for v in values[sendable]]
    return out


def margins_then_probabilities(graph: Any, n_classes: int) -> None:
    """Replace the classifier op by the same trees summing raw margins, then a float64 sigmoid
    (binary: [1 - p, p]) or softmax, written to `probabilities`."""
    from onnx import TensorProto, helper

    old = next(n for n in graph.node if n.op_type == "TreeEnsembleClassifier")
    attrs = _attrs(old)
    keep = {k: v for k, v in attrs.items() if k.startswith("nodes_") or k == "base_values"}
    keep.update(
        {f"target_{k}": attrs[f"class_{k}"] for k in ("ids", "nodeids", "treeids", "weights")}
    )
    trees = helper.make_node(
        "TreeEnsembleRegressor",
        [old.input[0]],
        ["lgbm_margin"],
        domain="ai.onnx.ml",
        n_targets=max(attrs["class_ids"]) + 1,
        post_transform="NONE",
        aggregate_function="SUM",
        **keep,
    )
    cast = helper.make_node("Cast", ["lgbm_margin"], ["lgbm_margin64"], to=TensorProto.DOUBLE)
    nodes = [trees, cast]
    if n_classes == 2:
        nodes += [
            helper.make_node("Sigmoid", ["lgbm_margin64"], ["lgbm_p1"]),
            helper.make_node("Sub", ["lgbm_one", "lgbm_p1"], ["lgbm_p0"]),
            helper.make_node("Concat", ["lgbm_p0", "lgbm_p1"], ["probabilities"], axis=1),
        ]
        graph.initializer.append(helper.make_tensor("lgbm_one", TensorProto.DOUBLE, [], [1.0]))
    else:
        nodes.append(helper.make_node("Softmax", ["lgbm_margin64"], ["probabilities"], axis=1))
    # The classifier and the nodes reading its outputs (label, probabilities) go; protobuf
    # hands out new wrapper objects on each access, so compare contents, not identities.
    kept = [n for n in graph.node if n != old and not set(n.input) & set(old.output)]
    del graph.node[:]
    graph.node.extend(kept + nodes)
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, ["N", n_classes])
    )


def add_interval(graph: Any, bands: list[Any], n_features: int) -> None:
    """Append the two quantile boosters on the main ensemble's input → `interval` [N, 2]."""
    from onnx import TensorProto, compose, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    source = next(n for n in graph.node if n.op_type in ENSEMBLES).input[0]
    ends = []
    for k, band in enumerate(bands):
        part = convert_sklearn(
            band,
            initial_types=[("features", DoubleTensorType([None, n_features]))],
            target_opset=OPSET,
        )
        exact_thresholds(part.graph, band.booster_)
        part = compose.add_prefix(part, f"band{k}_")
        for node in part.graph.node:
            node.input[:] = [source if x == f"band{k}_features" else x for x in node.input]
        graph.node.extend(part.graph.node)
        graph.initializer.extend(part.graph.initializer)
        ends.append(part.graph.output[0].name)
    graph.node.extend(
        [
            helper.make_node("Min", ends, ["interval_lower"]),
            helper.make_node("Max", ends, ["interval_upper"]),
            helper.make_node("Concat", ["interval_lower", "interval_upper"], ["interval"], axis=1),
        ]
    )
    graph.output.append(helper.make_tensor_value_info("interval", TensorProto.FLOAT, ["N", 2]))
