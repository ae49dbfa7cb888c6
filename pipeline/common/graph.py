"""What the runner appends to every model's ONNX graph, so serving never post-processes.

Classification: the calibration fitted on val (`pipeline.common.decision`) after the model's
probabilities, computed in float64 exactly as scikit-learn computes it: each class's probability
is clipped to [EPS, 1 - EPS] and turned into its logit; sigmoid applies Platt's 1 / (1 + exp(a s
+ b)), isotonic the fitted piecewise-linear curve (clipped at its ends); binary keeps 1 - p for
the other class, multiclass renormalises rows (uniform when every class got 0). Regression: the
value (and interval) in float64, with the inverse of `log1p` when the profile has it. The final
outputs are always named `probabilities`, or `value` [N, 1] and `interval` [N, 2].
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.decision import EPS, Calibrator
from serving.schemas import Outputs, Profile


class _Builder:
    """Nodes and constants appended to a graph, with names that cannot clash with its own."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.count = 0

    def _name(self, hint: str) -> str:
        self.count += 1
        return f"post_{hint}_{self.count}"

    def const(self, value: Any, dtype: Any = np.float64) -> str:
        from onnx import numpy_helper

        name = self._name("const")
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def __call__(self, op: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        out = out or self._name(op.lower())
        self.graph.node.append(helper.make_node(op, list(inputs), [out], self._name(op), **attrs))
        return out


def finish(path: Path, outputs: Outputs, profile: Profile, calibrator: Calibrator) -> Outputs:
    """Rewrite the graph at `path` in place: calibration or inverse transform appended, only
    the final outputs kept; returns their names."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 11:
        raise ValueError(f"{path}: opset {opset} is too old; convert with opset 11 or newer")
    graph = model.graph
    b = _Builder(graph)
    produced = {k: v for k, v in outputs.model_dump().items() if v is not None}
    for key in produced:
        produced[key] = _detach(graph, produced[key], f"{key}_model")
    del graph.output[:]
    if profile.is_classification:
        p = b("Cast", produced["probabilities"], to=TensorProto.DOUBLE)
        calibrate(b, p, calibrator, profile.n_classes, out="probabilities")
        shapes = {"probabilities": profile.n_classes}
    else:
        shapes = {k: width for k, width in (("value", 1), ("interval", 2)) if k in produced}
        for key, width in shapes.items():
            x = b("Cast", produced[key], to=TensorProto.DOUBLE)
            x = b("Reshape", x, b.const([-1, width], np.int64))
            if profile.target_transform == "log1p":
                x = b("Sub", b("Exp", x), b.const(1.0))
            b("Identity", x, out=key)
    for key, width in shapes.items():
        graph.output.append(helper.make_tensor_value_info(key, TensorProto.DOUBLE, ["N", width]))
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return Outputs(**{k: k for k in shapes})


def _detach(graph: Any, name: str, new: str) -> str:
    """Rename the tensor `name` everywhere in the graph, freeing the name for a final output."""
    for node in graph.node:
        for i, x in enumerate(node.output):
            if x == name:
                node.output[i] = new
        for i, x in enumerate(node.input):
            if x == name:
                node.input[i] = new
    return new


def calibrate(b: _Builder, p: str, calibrator: Calibrator, n_classes: int, out: str) -> str:
    """Calibrated probabilities from float64 probabilities `p` [N, C]."""
    parts = calibrator.parts()
    if not parts:
        return b("Identity", p, out=out)
    clipped = b("Min", b("Max", p, b.const(EPS)), b.const(1.0 - EPS))
    logit = b("Sub", b("Log", clipped), b("Log", b("Sub", b.const(1.0), clipped)))
    if n_classes == 2:  # scikit-learn calibrates class 1 and keeps 1 - p for class 0
        s = b(
            "Slice", logit, b.const([1], np.int64), b.const([2], np.int64), b.const([1], np.int64)
        )
        q = _curve(b, s, parts[0])
        return b("Concat", b("Sub", b.const(1.0), q), q, axis=1, out=out)
    columns = []
    for k, part in enumerate(parts):
        s = b(
            "Slice",
            logit,
            b.const([k], np.int64),
            b.const([k + 1], np.int64),
            b.const([1], np.int64),
        )
        columns.append(_curve(b, s, part))
    q = b("Concat", *columns, axis=1)
    total = b("MatMul", q, b.const(np.ones((n_classes, 1))))
    shares = b("Div", q, total)
    uniform = b.const(1.0 / n_classes)
    return b("Where", b("Equal", total, b.const(0.0)), uniform, shares, out=out)


def _curve(b: _Builder, s: str, part: Any) -> str:
    """One class's calibration curve applied to its logits `s` [N, 1]."""
    if hasattr(part, "a_"):  # Platt: 1 / (1 + exp(a s + b)) = sigmoid(-a s - b)
        return b("Sigmoid", b("Add", b("Mul", s, b.const(-part.a_)), b.const(-part.b_)))
    x, y = np.asarray(part.X_thresholds_, float), np.asarray(part.y_thresholds_, float)
    if len(x) < 2 or np.ptp(y) == 0:
        return b("Add", b("Mul", s, b.const(0.0)), b.const(y[0]))
    # Piecewise linear through the knots, flat outside them: y0 + sum of each segment's slope
    # times how far s runs along that segment.
    lows, highs = x[:-1][None, :], x[1:][None, :]
    slopes = (np.diff(y) / np.diff(x))[:, None]
    run = b("Sub", b("Min", b("Max", s, b.const(lows)), b.const(highs)), b.const(lows))
    return b("Add", b("MatMul", run, b.const(slopes)), b.const(y[0]))


def sha256(path: Path) -> str:
    """SHA-256 of a file, as the serving contract records it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
