"""What the runner appends to every model's ONNX graph, so serving never post-processes: the
calibration, in float64 as scikit-learn computes it, or the inverse of `log1p`. The outputs are
always `probabilities` [N, C], or `value` [N, 1] and `interval` [N, 2]."""

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
        self.graph, self.count = graph, 0

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
    """Append the calibration or inverse transform to the graph at `path`; returns its outputs."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    b = _Builder(graph)
    # The model's own outputs are renamed, freeing their names for the final outputs.
    produced = {k: f"{k}_model" for k, v in outputs.model_dump().items() if v is not None}
    renamed = {v: f"{k}_model" for k, v in outputs.model_dump().items() if v is not None}
    for node in graph.node:
        node.input[:] = [renamed.get(x, x) for x in node.input]
        node.output[:] = [renamed.get(x, x) for x in node.output]
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


def calibrate(b: _Builder, p: str, calibrator: Calibrator, n_classes: int, out: str) -> str:
    """Calibrated probabilities from float64 probabilities `p` [N, C]."""
    parts = calibrator.parts()
    if not parts:
        return b("Identity", p, out=out)
    clipped = b("Min", b("Max", p, b.const(EPS)), b.const(1.0 - EPS))
    logit = b("Sub", b("Log", clipped), b("Log", b("Sub", b.const(1.0), clipped)))

    def curve(k: int, part: Any) -> str:
        ends = [b.const([i], np.int64) for i in (k, k + 1, 1)]
        return _curve(b, b("Slice", logit, *ends), part)

    if n_classes == 2:  # scikit-learn calibrates class 1 and keeps 1 - p for class 0
        q = curve(1, parts[0])
        return b("Concat", b("Sub", b.const(1.0), q), q, axis=1, out=out)
    q = b("Concat", *(curve(k, part) for k, part in enumerate(parts)), axis=1)
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
