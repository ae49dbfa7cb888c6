"""ONNX Runtime against the native models: batch-1 latency and batch-1,000 throughput, one run.

    python bench/onnx_vs_native.py [--threads 1] [--budget-s 240]

Uses the pipeline's models when they exist (models/{baseline,lightgbm,text_model} and
models/export/); otherwise trains small stand-ins first: a LightGBM and a logistic-regression
Pipeline on synthetic rows, and a randomly initialised BERT with all-MiniLM-L6-v2's shape
(6 layers, hidden 384) — the speed of a transformer depends on its shape, not its weights.
Targets: LightGBM ORT >= 1.5x faster than Booster.predict at batch 1; transformer ORT fp32 >= 2x
faster than PyTorch eager at batch 1, length <= 64. Writes bench/out/onnx_vs_native.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
OUT = Path("bench/out/onnx_vs_native.json")
TEXT_LENGTHS = (16, 64)  # tokens at batch 1 (the target is stated for length <= 64)
THROUGHPUT_ROWS = 1000


def timed(fn: Callable[[], Any], budget_s: float, min_runs: int = 5, max_runs: int = 2000) -> dict:
    """Median and p99 latency of fn() over as many runs as fit in budget_s (after a warm-up)."""
    fn()
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    arr = np.array(samples)
    return {
        "median_ms": 1e3 * float(np.median(arr)),
        "p99_ms": 1e3 * float(np.quantile(arr, 0.99)),
        "runs": len(samples),
    }


def session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _synthetic_project(root: Path) -> tuple[Any, dict[str, Any], pd.DataFrame]:
    """(profile, {name: fitted Pipeline}, rows) on synthetic data when no pipeline outputs exist."""
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    from pipeline.common.dataset import Profile
    from pipeline.common.tabular import model_frame

    rng = np.random.default_rng(0)
    n = 20_000
    numeric = [f"x{i}" for i in range(12)]
    frame = pd.DataFrame(rng.normal(size=(n, len(numeric))), columns=numeric)
    frame["channel"] = rng.choice(["email", "phone", "web", "chat"], n)
    frame["city"] = rng.choice([f"c{i}" for i in range(200)], n)
    y = (frame["x0"] + frame["x1"] * frame["x2"] + rng.normal(0, 1, n) > 0).astype(int)
    profile = Profile(
        task="binary",
        target="y",
        id="row_id",
        labels=["0", "1"],
        numeric=numeric,
        categorical=["channel", "city"],
        text=None,
        datetime=[],
        derived=[],
        rows={"train": n},
    )
    X = model_frame(frame, profile)
    lgbm = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("numeric", "passthrough", numeric),
                        (
                            "categorical",
                            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                            profile.categorical,
                        ),
                    ]
                ),
            ),
            ("model", LGBMClassifier(n_estimators=300, num_leaves=31, verbose=-1, n_jobs=2)),
        ]
    )
    base = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        (
                            "numeric",
                            Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
                            numeric,
                        ),
                        (
                            "categorical",
                            OneHotEncoder(handle_unknown="ignore"),
                            profile.categorical,
                        ),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    )
    return profile, {"baseline": base.fit(X, y), "lightgbm": lgbm.fit(X, y)}, frame


def _tabular_models(root: Path) -> tuple[Any, dict[str, Any], pd.DataFrame, str]:
    from pipeline.common.dataset import load_profile, split_path
    from pipeline.export.tabular import load_pipeline

    if all((Path("models") / n / "model.skops").is_file() for n in ("baseline", "lightgbm")):
        profile = load_profile()
        models = {
            n: load_pipeline(Path("models") / n / "model.skops", [])
            for n in ("baseline", "lightgbm")
        }
        return profile, models, pd.read_parquet(split_path("test")), "pipeline outputs"
    return (*_synthetic_project(root), "synthetic stand-ins")


def bench_tabular(threads: int, budget: float, work: Path) -> dict[str, Any]:
    """Latency at batch 1 and rows/s at batch 1,000: sklearn / Booster.predict vs ORT."""
    from pipeline.common.tabular import model_frame
    from pipeline.export.tabular import convert_pipeline, feeds, graph_inputs

    profile, models, frame, source = _tabular_models(work)
    rows = frame.sample(n=THROUGHPUT_ROWS, replace=len(frame) < THROUGHPUT_ROWS, random_state=0)
    out: dict[str, Any] = {"source": source}
    for name, pipeline in models.items():
        inputs = graph_inputs(pipeline, profile)
        path = work / f"{name}.onnx"
        path.write_bytes(convert_pipeline(pipeline, inputs, 18, 3, "C.UTF-8").SerializeToString())
        sess = session(path, threads)
        one, many = rows.iloc[:1], rows
        feed1, feedn = feeds(one, inputs), feeds(many, inputs)
        x1, xn = model_frame(one, profile), model_frame(many, profile)
        result = {
            "sklearn_batch1": timed(lambda p=pipeline, x=x1: p.predict_proba(x), budget),
            "ort_batch1": timed(lambda s=sess, f=feed1: s.run(["probabilities"], f), budget),
            "sklearn_batch1000": timed(lambda p=pipeline, x=xn: p.predict_proba(x), budget, 3),
            "ort_batch1000": timed(lambda s=sess, f=feedn: s.run(["probabilities"], f), budget, 3),
        }
        booster = getattr(pipeline.steps[-1][1], "booster_", None)
        if booster is not None:  # the tree model alone, on already-encoded features
            enc1, encn = _encoded(pipeline, x1), _encoded(pipeline, xn)
            kw = {"num_threads": threads}
            result["booster_batch1"] = timed(
                lambda e=enc1, b=booster, k=kw: b.predict(e, **k), budget
            )
            result["booster_batch1000"] = timed(
                lambda e=encn, b=booster, k=kw: b.predict(e, **k), budget, 3
            )
        out[name] = _ratios(result, "sklearn" if booster is None else "booster")
    return out


def _encoded(pipeline: Any, frame: pd.DataFrame) -> Any:
    """The features the booster sees; TF-IDF makes them sparse, which Booster.predict takes."""
    import scipy.sparse

    encoded = pipeline[:-1].transform(frame)
    if scipy.sparse.issparse(encoded):
        return scipy.sparse.csr_matrix(encoded, dtype=np.float64)
    return np.asarray(encoded, dtype=np.float64)


def _ratios(result: dict[str, Any], native: str) -> dict[str, Any]:
    for side in ("sklearn", "booster", "ort"):
        key = f"{side}_batch1000"
        if key in result:
            result[key]["rows_per_s"] = THROUGHPUT_ROWS / (result[key]["median_ms"] / 1e3)
    result["speedup_batch1"] = (
        result[f"{native}_batch1"]["median_ms"] / result["ort_batch1"]["median_ms"]
    )
    result["speedup_batch1000"] = (
        result[f"{native}_batch1000"]["median_ms"] / result["ort_batch1000"]["median_ms"]
    )
    result["native"] = native
    return result


def _text_model(work: Path) -> tuple[Any, str]:
    from transformers import AutoModelForSequenceClassification, BertConfig

    trained = Path("models/text_model/hf")
    if (trained / "config.json").is_file():
        model = AutoModelForSequenceClassification.from_pretrained(trained, use_safetensors=True)
        return model.eval(), "pipeline outputs (models/text_model)"
    from transformers import BertForSequenceClassification

    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        num_labels=2,
    )
    return BertForSequenceClassification(config).eval(), "random BERT, all-MiniLM-L6-v2 shape"


def bench_text(threads: int, budget: float, work: Path, throughput_length: int) -> dict[str, Any]:
    """PyTorch eager vs ORT fp32 vs ORT int8 on the transformer."""
    import torch

    from pipeline.export.text import export_text_model, quantize_int8

    torch.set_num_threads(threads)
    model, source = _text_model(work)
    fp32, int8 = work / "text_model.onnx", work / "text_model.int8.onnx"
    export_text_model(model, fp32, 20)
    quantize_int8(fp32, int8)
    rng = np.random.default_rng(0)
    vocab = model.config.vocab_size
    shapes = {f"batch1_len{n}": (1, n) for n in TEXT_LENGTHS}
    shapes["batch1000"] = (THROUGHPUT_ROWS, throughput_length)
    sessions = {"ort": session(fp32, threads), "ort_int8": session(int8, threads)}
    result: dict[str, Any] = {"source": source, "length_batch1000": throughput_length}
    for batch, shape in shapes.items():
        ids = rng.integers(1000, vocab, size=shape, dtype=np.int64)
        mask = np.ones_like(ids)
        t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
        runs = 5 if batch.startswith("batch1_") else 1

        def eager(i: Any = t_ids, m: Any = t_mask) -> Any:
            with torch.inference_mode():
                return model(input_ids=i, attention_mask=m).logits

        result[f"torch_{batch}"] = timed(eager, budget if runs > 1 else 0, runs)
        for key, sess in sessions.items():
            feed = {"input_ids": ids, "attention_mask": mask}
            result[f"{key}_{batch}"] = timed(
                lambda s=sess, f=feed: s.run(["logits"], f), budget if runs > 1 else 0, runs
            )
    for n in TEXT_LENGTHS:
        ms = {k: result[f"{k}_batch1_len{n}"]["median_ms"] for k in ("torch", "ort", "ort_int8")}
        result[f"speedup_batch1_len{n}"] = ms["torch"] / ms["ort"]
        result[f"int8_vs_fp32_batch1_len{n}"] = ms["ort"] / ms["ort_int8"]
    for key in ("torch", "ort", "ort_int8"):
        result[f"{key}_batch1000"]["rows_per_s"] = THROUGHPUT_ROWS / (
            result[f"{key}_batch1000"]["median_ms"] / 1e3
        )
    result["speedup_batch1000"] = (
        result["torch_batch1000"]["median_ms"] / result["ort_batch1000"]["median_ms"]
    )
    result["int8_vs_fp32_batch1000"] = (
        result["ort_batch1000"]["median_ms"] / result["ort_int8_batch1000"]["median_ms"]
    )
    result["fp32_bytes"], result["int8_bytes"] = fp32.stat().st_size, int8.stat().st_size
    parity = Path("models/export/parity.json")
    if parity.is_file():  # accuracy of int8 vs fp32, measured by the export stage
        result["int8_accuracy_report"] = json.loads(parity.read_text()).get("quantized")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for every runtime")
    parser.add_argument("--budget-s", type=float, default=3.0, help="seconds per latency figure")
    parser.add_argument(
        "--throughput-length",
        type=int,
        default=32,
        help="token length of the transformer's batch-1,000 run",
    )
    parser.add_argument("--skip-text", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report: dict[str, Any] = {
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "threads": args.threads,
            },
            "tabular": bench_tabular(args.threads, args.budget_s, work),
        }
        if not args.skip_text:
            report["text_model"] = bench_text(
                args.threads, args.budget_s, work, args.throughput_length
            )
    report["seconds"] = time.perf_counter() - started
    report["summary"] = headline(report)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(summary(report))


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The figures bench/run_all.py puts in the results table."""
    lgbm = report["tabular"]["lightgbm"]
    out: dict[str, Any] = {
        "lightgbm_ort_vs_booster_batch1": round(lgbm["speedup_batch1"], 2),
        "lightgbm_target_1_5x_met": lgbm["speedup_batch1"] >= 1.5,
        "lightgbm_ort_rows_per_s_batch1000": round(lgbm["ort_batch1000"]["rows_per_s"]),
        "baseline_ort_vs_sklearn_batch1": round(report["tabular"]["baseline"]["speedup_batch1"], 1),
    }
    if "text_model" in report:
        text = report["text_model"]
        for n in TEXT_LENGTHS:
            out[f"transformer_ort_vs_torch_batch1_len{n}"] = round(
                text[f"speedup_batch1_len{n}"], 2
            )
        out["transformer_target_2x_met_len64"] = text["speedup_batch1_len64"] >= 2.0
        out["int8_vs_fp32_batch1_len64"] = round(text["int8_vs_fp32_batch1_len64"], 2)
        out["int8_size_ratio"] = round(text["int8_bytes"] / text["fp32_bytes"], 3)
    return out


def summary(report: dict[str, Any]) -> str:
    """One line: the speed-ups against their targets."""
    lgbm = report["tabular"]["lightgbm"]
    parts = [
        f"lightgbm ORT vs Booster.predict batch1 {lgbm['speedup_batch1']:.2f}x "
        f"(target 1.5x), batch1000 {lgbm['speedup_batch1000']:.2f}x",
        f"baseline ORT vs sklearn batch1 {report['tabular']['baseline']['speedup_batch1']:.1f}x",
    ]
    if "text_model" in report:
        text = report["text_model"]
        lens = ", ".join(f"len{n} {text[f'speedup_batch1_len{n}']:.2f}x" for n in TEXT_LENGTHS)
        parts.append(
            f"transformer ORT fp32 vs torch batch1 {lens} (target 2x), int8 vs fp32 "
            f"batch1 len64 {text['int8_vs_fp32_batch1_len64']:.2f}x, batch1000 "
            f"{text['int8_vs_fp32_batch1000']:.2f}x"
        )
    return "; ".join(parts) + f" → {OUT} ({report['seconds']:.0f}s)"


if __name__ == "__main__":
    main()
