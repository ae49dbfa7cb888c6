"""Export: copy each model's graph, prove serving parity, run the champion gate, write the contract.
All into a temporary folder that replaces `models/export/` only when every check passed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from omegaconf import DictConfig

from pipeline.common.config import validate
from pipeline.common.data import PROCESSED_DIR, load_profile, read_rows, read_stage_file
from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_dir, write_json, write_text
from pipeline.common.lineage import file_md5, git_state, input_hash
from pipeline.common.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
from pipeline.common.parity import summary_line
from pipeline.common.paths import CARD_FILE, PARAMS_FILE
from pipeline.export import gate, parity
from pipeline.export.records import caller_records, edge_records, input_schema
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

TRAINED_DIR, OUT_DIR = Path("models/trained"), Path("models/export")
METRICS_FILE = Path("metrics/export.json")


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
    """Copy the graph (and tokenizer), checked against the card, to `out/<name>/` and load it."""
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
    root: Path,
    profile: Profile,
    schema: list[FieldSchema],
) -> ParityReport:
    """Every model on the test split's records and on the edge records."""
    test = read_rows(root / PROCESSED_DIR, "test", profile)
    records = caller_records(test, profile)
    edges = edge_records(records, schema, profile)
    checks = []
    for name, model in models.items():
        card = cards[name]
        assert card.parity is not None  # a trained card always has its own parity checks
        tol = max(c.tolerance for c in card.parity.checks)
        path = root / TRAINED_DIR / name / "predictions_test.parquet"
        reference = parity.read_reference(path, model, profile, test.ids)
        checks.append(parity.reference_check(model, records, reference, profile, tol))
        checks += [
            parity.edge_check(model, group, rows, profile, tol) for group, rows in edges.items()
        ]
    return ParityReport(checks=checks, passed=all(c.passed for c in checks))


def export(config: ExportConfig, names: list[str], root: Path, tracking: DictConfig) -> Contract:
    """Run the stage below `root` (`tracking`: a config with the `tracking` group); the contract."""
    processed, trained_dir = root / PROCESSED_DIR, root / TRAINED_DIR
    profile = load_profile(processed)
    metric = champion_metric(config, profile)
    cards = read_cards(names, trained_dir, profile)
    trained = {n: c.entry for n, c in cards.items() if c.entry is not None}
    skipped = {n: c.skipped or "no graph" for n, c in cards.items() if c.entry is None}
    if not trained:
        raise PipelineError(
            f"every model was skipped ({skipped})" if names else "the models list is empty",
            where="models/trained" if names else "configs/config.yaml",
            fix="check the data and the models list",
        )
    schema = input_schema(profile, config.category_max_length, config.text_max_length)
    params = root / PARAMS_FILE
    with atomic_dir(root / OUT_DIR) as out:
        models = {n: copy_model(n, trained_dir / n, out, e) for n, e in trained.items()}
        entries = {n: m.entry for n, m in models.items()}
        report = serving_parity(models, cards, root, profile, schema)
        if not report.passed:
            raise PipelineError(
                summary_line(report, "serving parity"),
                where=str(trained_dir),
                fix="the exported graph does not answer as its stage predicted; re-run that stage",
            )
        candidate = gate.pick_candidate(entries, metric)
        val = read_rows(processed, "val", profile)
        policy = cast(gate.Policy, config.promote)
        settings = gate.Gate(policy, config.min_improvement, metric, profile, val)
        with open_registry(tracking, [processed, *(trained_dir / n for n in entries)]) as registry:
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
                lineage=Lineage(  # git state and DVC-style md5s of this export's inputs
                    **git_state(root),
                    data={PROCESSED_DIR.as_posix(): input_hash(processed)},
                    params=file_md5(params) if params.is_file() else None,
                    models={n: input_hash(trained_dir / n) for n in entries},
                ),
            )
            write_text(out / "parity.json", dump(report))
            write_text(out / CONTRACT_FILE, dump(contract))
    worst = {
        f"parity_{n}": max(c.max_abs_diff for c in report.checks if c.model == n) for n in entries
    }
    write_json(root / METRICS_FILE, {"champion": champion, "promoted": promotion.promoted, **worst})
    return contract


def main(cfg: DictConfig) -> str:
    """Stage entry: export the configured models; one line saying what was served and why."""
    contract = export(
        validate(cfg.export, ExportConfig, "export"), list(cfg.models), Path("."), cfg
    )
    skipped = "".join(f"; {n} skipped ({why})" for n, why in contract.skipped.items())
    assert contract.promotion is not None
    return (
        f"{len(contract.models)} models → {OUT_DIR} (serving parity ok); champion "
        f"{contract.champion}: {contract.promotion.reason}{skipped}"
    )
