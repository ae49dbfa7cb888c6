"""Export: copy each model's graph, prove serving parity, run the champion gate, write the contract.

Everything goes into a temporary folder that replaces `models/export/` only when every check
passed, so a failure leaves the previous export, `metrics/export.json` and the alias as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from omegaconf import DictConfig

from pipeline.common.config import validate
from pipeline.common.data import PROCESSED_DIR, load_profile, read_stage_file
from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_dir, write_json, write_text
from pipeline.common.lineage import file_md5, git_state, input_hash
from pipeline.common.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
from pipeline.common.paths import CARD_FILE, PARAMS_FILE
from pipeline.export import gate, parity
from pipeline.export.records import caller_records, edge_records, input_schema, read_split
from pipeline.export.registry import open_registry
from serving.runtime import LoadedModel, ModelFileError, load_model, verified_bytes
from serving.schemas import (
    CONTRACT_FILE,
    Contract,
    FieldSchema,
    Lineage,
    ModelCard,
    ModelEntry,
    ParityReport,
    Profile,
    dump,
)


@dataclass
class ExportConfig:
    """`configs/export/`: the contract's input limits and the champion gate."""

    category_max_length: int = 200  # characters a category value may have in a request
    text_max_length: int = 5000  # characters the text field may have in a request
    champion_metric: str | None = None  # on val; null: roc_auc (classification), rmse (regression)
    min_improvement: float = 0.0  # the candidate must beat the incumbent by at least this much
    promote: str = "if_better"  # always | if_better | never: when the champion alias moves

    def __post_init__(self) -> None:
        if self.promote not in gate.POLICIES:
            raise PipelineError(
                f"export.promote is {self.promote!r}",
                where="configs/export",
                fix=f"use one of {gate.POLICIES}",
            )


@dataclass(frozen=True)
class ExportPaths:
    """The stage's fixed paths below a project root."""

    root: Path = Path(".")

    @property
    def processed_dir(self) -> Path:
        return self.root / PROCESSED_DIR

    @property
    def trained_dir(self) -> Path:
        return self.root / "models" / "trained"

    @property
    def out_dir(self) -> Path:
        return self.root / "models" / "export"

    @property
    def metrics_file(self) -> Path:
        return self.root / "metrics" / "export.json"


def champion_metric(config: ExportConfig, profile: Profile) -> str:
    """The configured champion metric, checked against the task; the task's default if unset."""
    regression = profile.task == "regression"
    names = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    metric = config.champion_metric or ("rmse" if regression else "roc_auc")
    if metric not in names:
        raise PipelineError(
            f"export.champion_metric {metric!r} is not a {profile.task} metric",
            where="configs/export",
            fix=f"use one of {', '.join(names)}",
        )
    return metric


def read_cards(names: list[str], trained_dir: Path, profile: Profile) -> dict[str, ModelCard]:
    """Each listed model's card, checked to describe this data's task."""
    if not names:
        raise PipelineError(
            "the models list is empty",
            where="configs/config.yaml",
            fix="list the models to export under `models`",
        )
    cards = {}
    for name in names:
        card = read_stage_file(trained_dir / name / CARD_FILE, ModelCard)
        if card.task != profile.task or (card.entry and card.labels != profile.labels):
            raise PipelineError(
                f"the card is for a {card.task} task with labels {card.labels}, the data is "
                f"{profile.task} with {profile.labels}",
                where=str(trained_dir / name / CARD_FILE),
                fix=f"re-run the model stage: dvc repro {name}",
            )
        cards[name] = card
    return cards


def copy_model(name: str, source: Path, out: Path, entry: ModelEntry) -> LoadedModel:
    """Copy the graph (and tokenizer) to `out/<name>/`, checked against the card's sha256s, and
    load it from there as the server does; paths become relative to `out`."""
    update: dict[str, object] = {"file": f"{name}/{entry.file}"}
    files = [(entry.file, entry.sha256)]
    if entry.tokenizer is not None:
        files.append((entry.tokenizer.file, entry.tokenizer.sha256))
        update["tokenizer"] = entry.tokenizer.model_copy(update={"file": f"{name}/{files[1][0]}"})
    try:
        for relative, sha256 in files:
            data = verified_bytes(source, relative, sha256, f"model {name}")
            (out / name / relative).parent.mkdir(parents=True, exist_ok=True)
            (out / name / relative).write_bytes(data)
        return load_model(out, entry.model_copy(update=update))
    except ModelFileError as exc:  # one line naming the stage to re-run
        reason = str(exc).partition("fix:")[0].rstrip(" —;")
        raise PipelineError(reason, fix=f"re-run the model stage: dvc repro {name}") from None


def serving_parity(
    models: dict[str, LoadedModel],
    cards: dict[str, ModelCard],
    paths: ExportPaths,
    profile: Profile,
    schema: list[FieldSchema],
) -> ParityReport:
    """Every model on the test split's records and on the edge records."""
    test = read_split(paths.processed_dir, "test", profile)
    records = caller_records(test, profile)
    edges = edge_records(records, schema, profile)
    checks = []
    for name, model in models.items():
        tol = parity.tolerance(cards[name])
        path = paths.trained_dir / name / "predictions_test.parquet"
        reference = parity.read_reference(path, model, profile, test.ids)
        checks.append(parity.reference_check(model, records, reference, profile, tol))
        checks += [
            parity.edge_check(model, group, rows, profile, tol) for group, rows in edges.items()
        ]
    return ParityReport(checks=checks, passed=all(c.passed for c in checks))


def lineage(paths: ExportPaths, names: list[str]) -> Lineage:
    """Git state and DVC-style md5s of the processed data, params.yaml and each model's folder."""
    params = paths.root / PARAMS_FILE
    return Lineage(
        **git_state(paths.root),
        data={PROCESSED_DIR.as_posix(): input_hash(paths.processed_dir)},
        params=file_md5(params) if params.is_file() else None,
        models={n: input_hash(paths.trained_dir / n) for n in names},
    )


def export(
    config: ExportConfig, names: list[str], paths: ExportPaths, tracking: DictConfig | None
) -> Contract:
    """Run the stage below `paths.root`; `tracking` is the config holding the `tracking` group
    (None: no tracking store, so no incumbent). Returns the contract written."""
    profile = load_profile(paths.processed_dir)
    metric = champion_metric(config, profile)
    cards = read_cards(names, paths.trained_dir, profile)
    trained = {n: c.entry for n, c in cards.items() if c.entry is not None}
    skipped = {n: c.skipped or "no graph" for n, c in cards.items() if c.entry is None}
    if not trained:
        raise PipelineError(
            f"every model was skipped ({skipped})",
            where="models/trained",
            fix="check the data and the models list",
        )
    schema = input_schema(profile, config.category_max_length, config.text_max_length)
    with atomic_dir(paths.out_dir) as out:
        models = {n: copy_model(n, paths.trained_dir / n, out, e) for n, e in trained.items()}
        entries = {n: m.entry for n, m in models.items()}
        report = serving_parity(models, cards, paths, profile, schema)
        if not report.passed:
            raise PipelineError(
                parity.summary_line(report),
                where=str(paths.trained_dir),
                fix="the exported graph does not answer as its stage predicted; re-run that stage",
            )
        candidate = gate.pick_candidate(entries, metric)
        settings = gate.Gate(
            cast(gate.Policy, config.promote),
            config.min_improvement,
            metric,
            profile,
            read_split(paths.processed_dir, "val", profile),
        )
        inputs = [paths.processed_dir, *(paths.trained_dir / n for n in entries)]
        with open_registry(tracking, inputs) as registry:
            promotion, champion = gate.run_gate(settings, registry, models[candidate], entries)
            contract = Contract(
                task=profile.task,
                target=profile.target,
                labels=profile.labels,
                id=profile.id,
                input_schema=schema,
                features=profile.features,
                models=entries,
                champion=champion,
                champion_metric=f"val.{metric}",
                promotion=promotion,
                skipped=skipped,
                lineage=lineage(paths, list(entries)),
            )
            write_text(out / "parity.json", dump(report))
            write_text(out / CONTRACT_FILE, dump(contract))
    worst = {
        f"parity_{n}": max(c.max_abs_diff for c in report.checks if c.model == n) for n in entries
    }
    write_json(paths.metrics_file, {"champion": champion, "promoted": promotion.promoted, **worst})
    return contract


def main(cfg: DictConfig) -> str:
    """Stage entry: export the configured models; one line saying what was served and why."""
    config = validate(cfg.export, ExportConfig, "export")
    paths = ExportPaths()
    contract = export(config, list(cfg.models), paths, cfg)
    skipped = "".join(f"; {n} skipped ({why})" for n, why in contract.skipped.items())
    assert contract.promotion is not None
    return (
        f"{len(contract.models)} models → {paths.out_dir} (serving parity ok); champion "
        f"{contract.champion}: {contract.promotion.reason}{skipped}"
    )
