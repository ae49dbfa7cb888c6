"""ONNX Runtime against the native models in one process, the same thread count on both sides.

- Tabular, per served tabular model: the exported graph (preprocessing, model, calibration) run
  by `serving.runtime` against the fitted Pipeline's `predict_proba` (model.skops), both on the
  test split's rows: batch-1 latency (the two interleaved) and rows/s at batch 1,000.
- LightGBM trees alone: `Booster.predict` against the booster converted as the stage converts
  it (float64 thresholds, margins then probabilities), on the same encoded features: the
  like-for-like pair. Target: ONNX Runtime >= 1.5x faster at batch 1.
- The transformer: eager PyTorch against the graph the text stage exports (torch's dynamo
  exporter) and its dynamic int8 copy, at batch 1 (16 tokens and the configured max_length)
  and 256 texts at max_length. Built from configs/text_model's default checkpoint
  (all-MiniLM-L6-v2; tiny-random in quick mode): its speed depends on its shape, not on
  trained weights. Target: fp32 ONNX Runtime >= 2x eager PyTorch at batch 1.

Writes bench/out/onnx_vs_native.json.

    python bench/onnx_vs_native.py [--threads 1] [--budget-s 3]    # BENCH_QUICK=1: 0.3 s
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _models import contract, native_pipeline, test_split
from _project import OUT, quick, trained_project

RESULT = OUT / "onnx_vs_native.json"
ROWS = 1000  # tabular throughput batch
TEXTS = 256  # transformer throughput batch


def timed_together(calls: dict[str, Callable[[], Any]], budget_s: float) -> dict[str, float]:
    """Median ms of each call, interleaved call by call so a busy spell slows all alike."""
    for call in calls.values():
        call()
    samples: dict[str, list[float]] = {k: [] for k in calls}
    deadline = time.perf_counter() + budget_s
    rounds = 0
    while rounds < 2000 and (rounds < 5 or time.perf_counter() < deadline):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            samples[key].append(time.perf_counter() - start)
        rounds += 1
    return {k: round(1e3 * float(np.median(v)), 4) for k, v in samples.items()}


def bench_tabular(project: Path, threads: int, budget: float) -> dict[str, Any]:
    from serving.runtime import load_model
    from serving.schemas import load_contract

    export = project / "models" / "export"
    spec = load_contract(export)
    split = test_split(project)
    rows = np.arange(ROWS) % len(split)
    out: dict[str, Any] = {}
    for name, entry in spec.models.items():
        if entry.kind != "tabular":
            continue
        pipe = native_pipeline(project, name)
        model = load_model(export, entry, threads)
        names = list(model.outputs.values())
        columns = list(pipe[0].feature_names_in_)
        result: dict[str, Any] = {}
        for batch, take in (("batch1", rows[:1]), (f"batch{ROWS}", rows)):
            part = split.take(take)
            frame, (feed,) = part.frame(columns), model.feeds(part.columns)
            calls = {
                "native": lambda p=pipe, f=frame: p.predict_proba(f),
                "ort": lambda m=model, f=feed, o=names: m.session.run(o, f),
            }
            result[batch] = _speedup(timed_together(calls, budget), len(take))
        if hasattr(pipe[-1], "booster_"):
            result["trees"] = bench_trees(pipe, split.take(rows).frame(columns), threads, budget)
        out[name] = result
    return out


def bench_trees(pipe: Any, frame: Any, threads: int, budget: float) -> dict[str, Any]:
    """Booster.predict against the converted booster alone, on the same encoded rows."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    from pipeline.lightgbm import trees
    from serving.runtime import cpu_session

    estimator = pipe[-1]
    booster = estimator.booster_
    trees.register_lightgbm()
    graph = convert_sklearn(
        estimator,
        initial_types=[("features", DoubleTensorType([None, booster.num_feature()]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=trees.OPSET,
    )
    trees.margins_then_probabilities(graph.graph, len(estimator.classes_))
    trees.exact_thresholds(graph.graph, booster)
    session = cpu_session(graph.SerializeToString(), threads)
    encoded = pipe[:-1].transform(frame)
    dense = np.asarray(encoded.toarray() if hasattr(encoded, "toarray") else encoded, np.float64)
    output = session.get_outputs()[-1].name
    result: dict[str, Any] = {"features": booster.num_feature()}
    for batch, x in (("batch1", dense[:1]), (f"batch{len(dense)}", dense)):
        calls = {
            "native": lambda x=x: booster.predict(x, num_threads=threads),
            "ort": lambda x=x: session.run([output], {"features": x}),
        }
        result[batch] = _speedup(timed_together(calls, budget), len(x))
    return result


def _speedup(ms: dict[str, float], rows: int) -> dict[str, Any]:
    out: dict[str, Any] = {f"{k}_ms": v for k, v in ms.items()}
    out["ort_vs_native"] = round(ms["native"] / ms["ort"], 3)
    if rows > 1:
        out |= {f"{k}_rows_per_s": round(rows / (v / 1e3)) for k, v in ms.items()}
    return out


def bench_text(threads: int, budget: float, work: Path) -> dict[str, Any]:
    import torch

    from pipeline.text_model.config import TextModelConfig
    from pipeline.text_model.encoder import Served, build, export_graph, quantize_int8
    from serving.runtime import cpu_session

    torch.set_num_threads(threads)
    config = TextModelConfig(pretrained="tiny-random") if quick() else TextModelConfig()
    _, net = build(config, 2)
    served = Served(net.eval(), regression=False)
    fp32, int8 = work / "text.onnx", work / "text.int8.onnx"
    export_graph(served, fp32, "probabilities", config.opset)
    quantize_int8(fp32, int8)
    sessions = {"ort": cpu_session(str(fp32), threads), "ort_int8": cpu_session(str(int8), threads)}
    vocab = int(net.encoder.config.vocab_size)
    rng = np.random.default_rng(0)
    result: dict[str, Any] = {"pretrained": config.pretrained, "threads": threads}
    for batch, rows, length in (
        ("batch1_len16", 1, 16),
        (f"batch1_len{config.max_length}", 1, config.max_length),
        (f"batch{TEXTS}_len{config.max_length}", TEXTS, config.max_length),
    ):
        ids = rng.integers(5, vocab, size=(rows, length), dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(feed["attention_mask"])

        def eager(i: Any = t_ids, m: Any = t_mask) -> Any:
            with torch.inference_mode():
                return served(i, m)

        calls: dict[str, Callable[[], Any]] = {"torch": eager}
        calls |= {k: lambda s=s, f=feed: s.run(None, f) for k, s in sessions.items()}
        ms = timed_together(calls, budget if rows == 1 else 0)
        result[batch] = {f"{k}_ms": v for k, v in ms.items()}
        result[batch]["ort_vs_torch"] = round(ms["torch"] / ms["ort"], 3)
        result[batch]["int8_vs_fp32"] = round(ms["ort"] / ms["ort_int8"], 3)
        diff = np.abs(eager().numpy() - sessions["ort"].run(None, feed)[0]).max()
        result[batch]["max_abs_diff"] = float(diff)
    result["int8_size_ratio"] = round(int8.stat().st_size / fp32.stat().st_size, 3)
    return result


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The figures bench/run_all.py puts in the table: speed-ups (> 1: ONNX Runtime faster)."""
    out: dict[str, Any] = {}
    for name, result in report["tabular"].items():
        out[f"{name}_ort_vs_native_batch1"] = result["batch1"]["ort_vs_native"]
        if "trees" in result:
            out[f"{name}_trees_ort_vs_booster_batch1"] = result["trees"]["batch1"]["ort_vs_native"]
    text = report.get("text_model")
    if text:
        single = [k for k, v in text.items() if isinstance(v, dict) and k.startswith("batch1_")]
        for key in single:
            out[f"transformer_ort_vs_torch_{key}"] = text[key]["ort_vs_torch"]
        out[f"transformer_int8_vs_fp32_{single[-1]}"] = text[single[-1]]["int8_vs_fp32"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for every runtime")
    parser.add_argument("--budget-s", type=float, default=0.3 if quick() else 3.0)
    parser.add_argument("--skip-text", action="store_true")
    args = parser.parse_args()
    project = trained_project()
    report: dict[str, Any] = {
        "tabular": bench_tabular(project, args.threads, args.budget_s),
        "threads": args.threads,
        "project": str(project),
        "served_models": sorted(contract(project)["models"]),
        "quick": quick(),
    }
    if not args.skip_text:
        with tempfile.TemporaryDirectory() as work:
            report["text_model"] = bench_text(args.threads, args.budget_s, Path(work))
    report = {"summary": headline(report), **report}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    print(" | ".join(f"{k} {v}" for k, v in report["summary"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
