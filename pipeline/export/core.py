"""Export every trained model, prove parity, write the contract: the stage's pure core."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from pipeline.common.config import validate
from pipeline.common.dataset import PROCESSED_DIR, Profile, load_profile, split_path
from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_dir, write_json
from pipeline.common.paths import PARAMS_FILE
from pipeline.export import contract as ct
from pipeline.export import parity, tabular, verify
from pipeline.export.config import ExportConfig
from pipeline.export.textexport import export_text

log = logging.getLogger(__name__)
TABULAR = ("baseline", "lightgbm")
PARITY_HINT = "see the checks logged above; re-train or fix the converter before serving"


@dataclass(frozen=True)
class ExportPaths:
    """Where the stage reads and writes (fixed paths, see docs/architecture.md)."""

    processed_dir: Path = PROCESSED_DIR
    models_dir: Path = Path("models")
    metrics_dir: Path = Path("metrics")
    params_file: Path = Path(PARAMS_FILE)

    @property
    def out_dir(self) -> Path:
        return self.models_dir / "export"

    @property
    def metrics_file(self) -> Path:
        return self.metrics_dir / "export.json"


@dataclass
class ExportResult:
    """What the stage produced: the contract, the parity report and the summary metrics."""

    contract: dict[str, Any]
    parity: dict[str, Any]
    metrics: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)


def check_config(cfg: ExportConfig) -> None:
    """Reject configurations the stage cannot honour, naming the key."""
    unknown = [m for m in cfg.models if m not in (*TABULAR, "text_model")]
    if unknown or not cfg.models:
        raise PipelineError(
            f"export.models must list some of baseline, lightgbm, text_model; found {cfg.models}",
            where="configs/export",
            fix="remove unknown names",
        )
    if cfg.optimize not in ("none", "basic", "extended"):
        raise PipelineError(
            f"export.optimize must be none, basic or extended, found {cfg.optimize!r}",
            where="configs/export",
            fix="pick one of the three",
        )


def _feature_spec(profile: Profile) -> dict[str, Any]:
    spec = profile.extra.get("feature_spec")
    if isinstance(spec, dict):
        return spec
    raise PipelineError(
        "profile.extra has no 'feature_spec' (the spec serving.features derives features with)",
        where="data/processed/profile.json",
        fix="re-run the ETL: dvc repro etl",
    )


def _test_frame(paths: ExportPaths, cfg: ExportConfig) -> pd.DataFrame:
    path = split_path("test", paths.processed_dir)
    if not path.is_file():
        raise PipelineError("test split not found", where=str(path), fix="dvc repro etl")
    frame = pd.read_parquet(path)
    if cfg.max_test_rows is not None:
        frame = frame.head(cfg.max_test_rows)
    return frame.reset_index(drop=True)


def _nullable(schema: list[dict[str, Any]], profile: Profile, test: pd.DataFrame) -> set[str]:
    """Model columns that may be null: nullable raw fields and derived columns seen with nulls."""
    raw = {f["name"] for f in schema if f.get("nullable")}
    derived = {c for c in profile.derived if c in test.columns and test[c].isna().any()}
    return raw | derived


def _base_facts(name: str, paths: ExportPaths, shared: dict[str, Any]) -> dict[str, Any]:
    fix = f"re-run the model stage: dvc repro {name}"
    return {
        **shared,
        "model": name,
        "metrics": ct.read_json(paths.metrics_dir / f"{name}.json", fix),
        "mlflow": ct.read_json(paths.models_dir / name / "run.json", fix),
    }


def _export_tabular(
    name: str,
    cfg: ExportConfig,
    paths: ExportPaths,
    profile: Profile,
    test: pd.DataFrame,
    nullable: set[str],
    facts: dict[str, Any],
    out: Path,
) -> tuple[dict[str, Any], list[parity.Check]]:
    import onnx

    model_dir = paths.models_dir / name
    pipeline = tabular.load_pipeline(model_dir / "model.skops", cfg.trusted_types)
    graph, inputs = tabular.convert_pipeline(
        pipeline, tabular.graph_inputs(pipeline, profile), cfg.opset, cfg.ml_opset, cfg.text_locale
    )
    io = {"inputs": [i.to_json() for i in inputs], "outputs": {"probabilities": "probabilities"}}
    ct.set_metadata(graph, {**facts, **io, "kind": "tabular"})
    target = out / f"{name}.onnx"
    onnx.save_model(graph, str(target), save_as_external_data=False)
    onnx.checker.check_model(str(target), full_check=True)
    sess = parity.session(target)
    checks, proba = verify.tabular_checks(
        name, sess, pipeline, inputs, test, nullable, profile, cfg
    )
    reference = pd.read_parquet(model_dir / "predictions_test.parquet")
    checks.append(
        verify.reference_check(
            name, test[profile.id].to_numpy(), proba, reference, profile.id, cfg.reference_tolerance
        )
    )
    entry = {"file": target.name, "kind": "tabular", **io}
    return entry, checks


def _shared_facts(
    profile: Profile,
    schema: list[dict[str, Any]],
    features: dict[str, Any],
    lineage: dict[str, Any],
) -> dict[str, Any]:
    return {
        "schema_version": ct.SCHEMA_VERSION,
        "task": profile.task,
        "labels": profile.labels,
        "id": profile.id,
        "input_schema": schema,
        "features": features,
        "lineage": lineage,
    }


def _models_to_export(cfg: ExportConfig, paths: ExportPaths, profile: Profile) -> dict[str, str]:
    """name → "export" or the reason it is skipped (the text model on data without text)."""
    plan: dict[str, str] = {}
    for name in cfg.models:
        skipped = paths.models_dir / name / "skipped.json"
        if name == "text_model" and (profile.text is None or skipped.is_file()):
            plan[name] = "the data has no text column"
        elif not (paths.models_dir / name).is_dir():
            raise PipelineError(
                "model directory not found",
                where=str(paths.models_dir / name),
                fix=f"train it first (dvc repro {name}) or remove it from export.models",
            )
        else:
            plan[name] = "export"
    return plan


def export_models(cfg: ExportConfig, paths: ExportPaths, register: Any = None) -> ExportResult:
    """Export, check parity, pick the champion, register (optional callback), write the contract.

    `register(files, champion)` returns `{name: {"registered_model", "version", "run_id"}}`; it
    runs only once every parity check passed, before the new directory replaces the old one.
    """
    check_config(cfg)
    profile = load_profile(paths.processed_dir)
    features = _feature_spec(profile)
    schema = ct.input_schema(profile, features, cfg.category_max_length, cfg.text_max_length)
    test = _test_frame(paths, cfg)
    nullable = _nullable(schema, profile, test)
    plan = _models_to_export(cfg, paths, profile)
    todo = [n for n, why in plan.items() if why == "export"]
    lineage = ct.lineage(
        paths.processed_dir, paths.params_file, {n: paths.models_dir / n for n in todo}
    )
    shared = _shared_facts(profile, schema, features, lineage)
    entries: dict[str, dict[str, Any]] = {}
    checks: list[parity.Check] = []
    extras: dict[str, Any] = {}
    with atomic_dir(paths.out_dir) as out:
        for name in todo:
            facts = _base_facts(name, paths, shared)
            log.info("exporting %s", name)
            if name == "text_model":
                entry, found, extras = export_text(cfg, paths, profile, test, facts, out)
            else:
                entry, found = _export_tabular(
                    name, cfg, paths, profile, test, nullable, facts, out
                )
            entries[name] = {**entry, "metrics": facts["metrics"], "mlflow": facts["mlflow"]}
            checks += found
        _log_checks(checks)
        parity.raise_on_failure(checks, PARITY_HINT)
        for entry in entries.values():
            entry["sha256"] = ct.sha256(out / entry["file"])
        champion = ct.pick_champion(
            {n: e["metrics"] for n, e in entries.items()}, cfg.champion_metric
        )
        registered = (
            register({n: out / e["file"] for n, e in entries.items()}, champion) if register else {}
        )
        for name, info in registered.items():
            entries[name]["onnx_registry"] = info
            entries[name]["version"] = info.get("version")
        payload = _contract(shared, entries, champion, cfg, plan, extras)
        report = _parity_report(checks, cfg, extras)
        write_json(out / "contract.json", payload)
        write_json(out / "parity.json", report)
    metrics = {
        "parity": parity.summarise(checks),
        "champion": champion,
        **({"quantized": extras["quantized"]["summary"]} if "quantized" in extras else {}),
    }
    write_json(paths.metrics_file, metrics)
    skipped = {n: why for n, why in plan.items() if why != "export"}
    return ExportResult(payload, report, metrics, skipped)


def _log_checks(checks: list[parity.Check]) -> None:
    for check in checks:
        level = logging.INFO if check.passed or not check.gating else logging.ERROR
        log.log(
            level,
            "parity %-10s %-28s rows=%-6d max|Δ|=%.3g labels≠%d %s",
            check.model,
            check.name,
            check.rows,
            check.max_abs_diff,
            check.label_mismatches,
            "ok" if check.passed else "FAIL",
        )


def _contract(
    shared: dict[str, Any],
    entries: dict[str, dict[str, Any]],
    champion: str,
    cfg: ExportConfig,
    plan: dict[str, str],
    extras: dict[str, Any],
) -> dict[str, Any]:
    payload = {
        **shared,
        "models": entries,
        "champion": champion,
        "champion_metric": f"val.{cfg.champion_metric}",
        "skipped": {n: why for n, why in plan.items() if why != "export"},
    }
    if "quantized" in extras:
        payload["quantized"] = {"text_model": extras["quantized"]["contract"]}
    return payload


def _parity_report(
    checks: list[parity.Check], cfg: ExportConfig, extras: dict[str, Any]
) -> dict[str, Any]:
    return {
        "passed": not parity.failures(checks),
        "tolerances": {
            "probabilities": cfg.proba_tolerance,
            "logits": cfg.logits_tolerance,
            "reference": cfg.reference_tolerance,
        },
        "summary": parity.summarise(checks),
        "checks": [c.to_json() for c in checks],
        **({"quantized": extras["quantized"]["report"]} if "quantized" in extras else {}),
    }


def export_entry(cfg: DictConfig) -> str:
    """Stage entry: validate `export`, run the core with MLflow registration, one-line summary."""
    from pipeline.export.registry import mlflow_register

    config = validate(cfg.export, ExportConfig, "export")
    paths = ExportPaths()

    def register(files: dict[str, Path], champion: str) -> dict[str, dict[str, Any]]:
        return mlflow_register(cfg, files, champion, config.registered_name, paths)

    result = export_models(config, paths, register)
    worst = {n: s["max_abs_diff"] for n, s in result.metrics["parity"].items()}
    parts = [f"{n} max|Δ|={d:.2g}" for n, d in worst.items()]
    skipped = [f"{n} skipped ({why})" for n, why in result.skipped.items()]
    return (
        f"{len(worst)} models → {paths.out_dir} (parity ok: {', '.join(parts)}; "
        f"champion {result.contract['champion']})" + (f"; {'; '.join(skipped)}" if skipped else "")
    )
