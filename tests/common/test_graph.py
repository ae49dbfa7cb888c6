"""What the runner appends to a graph: calibration and the inverse target transform, in float64."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pipeline.common import graph
from pipeline.common.decision import Calibrator, DecisionConfig, fit_calibrator
from serving.runtime import cpu_session
from serving.schemas import Outputs
from tests.common.test_decision import profile

EXTREMES = [[0.0, 1.0], [1.0, 0.0], [1e-300, 1.0], [0.5, 0.5], [1 - 1e-16, 1e-16], [1e-13, 1.0]]


def identity_model(path: Path, outputs: dict[str, int], elem: int = TensorProto.DOUBLE) -> None:
    """A graph passing inputs named x_<output> straight to outputs, plus an unused `label`."""
    nodes = [helper.make_node("Identity", [f"x_{k}"], [k]) for k in outputs]
    nodes.append(helper.make_node("Identity", [f"x_{next(iter(outputs))}"], ["label"]))
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(f"x_{k}", elem, ["N", w]) for k, w in outputs.items()],
        [
            helper.make_tensor_value_info(k, elem, ["N", w])
            for k, w in [*outputs.items(), ("label", 1)]
        ],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    path.write_bytes(model.SerializeToString())


def run(path: Path, **feeds: np.ndarray) -> dict[str, np.ndarray]:
    session = cpu_session(path.read_bytes())
    names = [o.name for o in session.get_outputs()]
    return dict(
        zip(names, session.run(names, {f"x_{k}": v for k, v in feeds.items()}), strict=True)
    )


def probabilities(n: int, classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.5, (n, classes))
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic", "none"])
@pytest.mark.parametrize("classes", [2, 3])
def test_calibrated_graph_equals_scikit_learn(tmp_path: Path, method: str, classes: int) -> None:
    task = "binary" if classes == 2 else "multiclass"
    val = probabilities(3000, classes, 0)
    rng = np.random.default_rng(1)
    y = np.array([rng.choice(classes, p=row**0.5 / (row**0.5).sum()) for row in val])
    cal = fit_calibrator(val, y, profile(task), DecisionConfig(calibration=method))
    test = probabilities(500, classes, 2)
    if classes == 2:
        test = np.vstack([test, EXTREMES])
    else:
        test = np.vstack([test, [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1e-300, 0.5, 0.5]]])
    path = tmp_path / "model.onnx"
    identity_model(path, {"probabilities": classes})
    outputs = graph.finish(path, Outputs(probabilities="probabilities"), profile(task), cal)
    assert outputs == Outputs(probabilities="probabilities")
    got = run(path, probabilities=test)
    assert list(got) == ["probabilities"]  # the model's `label` is gone
    assert got["probabilities"].dtype == np.float64
    np.testing.assert_allclose(got["probabilities"], cal.apply(test), rtol=0, atol=1e-12)


def test_a_float32_model_output_is_calibrated_in_float64(tmp_path: Path) -> None:
    val = probabilities(2000, 2, 3)
    y = (np.random.default_rng(4).random(2000) < val[:, 1] ** 2).astype(int)
    cal = fit_calibrator(val, y, profile("binary"), DecisionConfig(calibration="sigmoid"))
    path = tmp_path / "model.onnx"
    identity_model(path, {"probabilities": 2}, TensorProto.FLOAT)
    graph.finish(path, Outputs(probabilities="probabilities"), profile("binary"), cal)
    test = probabilities(200, 2, 5).astype(np.float32)
    got = run(path, probabilities=test)["probabilities"]
    np.testing.assert_allclose(got, cal.apply(test.astype(np.float64)), atol=1e-12)


@pytest.mark.parametrize("transform", ["log1p", "none"])
def test_regression_value_and_interval_leave_in_target_units(
    tmp_path: Path, transform: str
) -> None:
    p = profile("regression").model_copy(update={"target_transform": transform})
    path = tmp_path / "model.onnx"
    identity_model(path, {"variable": 1, "band": 2}, TensorProto.FLOAT)
    outputs = graph.finish(path, Outputs(value="variable", interval="band"), p, Calibrator("none"))
    assert outputs == Outputs(value="value", interval="interval")
    value = np.array([[0.0], [1.5], [12.0], [-0.5]], dtype=np.float32)
    band = np.hstack([value - 1, value + 1])
    got = run(path, variable=value, band=band)
    invert = np.expm1 if transform == "log1p" else (lambda x: x)
    np.testing.assert_allclose(got["value"], invert(value.astype(np.float64)), rtol=1e-15)
    np.testing.assert_allclose(got["interval"], invert(band.astype(np.float64)), rtol=1e-15)
    assert [o.name for o in onnx.load(str(path)).graph.output] == ["value", "interval"]
