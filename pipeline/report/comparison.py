"""The report's top: the served model, the champion gate, the models beside the base rate, plots."""

from __future__ import annotations

from pipeline.common.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, improvement
from pipeline.report.html import cell, esc, fmt, image, note, pairs, table
from pipeline.report.inputs import BASE, ModelResult, ReportData
from pipeline.report.truth import BELOW, BEST, NO_INTERVAL, ONLY, TIED, Interval
from serving.schemas import Decision, Promotion


def summary(data: ReportData) -> str:
    """The served model, the champion gate's decision and whether the ranking is real."""
    contract, a = data.contract, data.assessment
    if contract is None:
        parts = [note("No export yet: no champion and no serving contract.")]
    else:
        parts = [
            f'<p id="champion">Served by default: <strong>{esc(contract.champion)}</strong> '
            f"(champion metric {esc(contract.champion_metric)}).</p>{gate(contract.promotion)}"
        ]
    if a is not None:
        parts.append(f'<p id="ranking">{esc(ranking(a.standing, a.metric))}</p>')
    return "".join(parts)


def gate(promotion: Promotion | None) -> str:
    """The champion gate's decision with both scores and the reason."""
    if promotion is None:
        return note("The export recorded no champion gate decision.")
    inc = promotion.incumbent
    held = "none" if inc is None else f"{inc.name} v{inc.version}"
    score = "no incumbent" if inc is None else "incomparable" if inc.score is None else inc.score
    rows = {
        "policy": f"export.promote={promotion.policy}",
        "metric": promotion.metric,
        "candidate (best of this run)": promotion.candidate,
        "candidate score": promotion.candidate_score,
        "incumbent (MLflow alias champion)": held,
        "incumbent score": score,
        "promoted": promotion.promoted,
        "reason": promotion.reason,
    }
    return f'<div class="gate"><h3>Champion gate</h3>{pairs(rows, "gate")}</div>'


def ranking(standing: dict[str, str], metric: str) -> str:
    """One sentence: which models the test split can tell apart on the headline metric."""
    best = next(n for n, s in standing.items() if s in (BEST, ONLY))
    tied = [n for n, s in standing.items() if s in (TIED, NO_INTERVAL)]
    below = [n for n, s in standing.items() if s == BELOW]
    if not tied and not below:
        return f"{best} is the only trained model."
    text = f"On test {metric}, {best} is best"
    if tied:
        text += f", but {', '.join(tied)} cannot be told apart from it (95% intervals overlap)"
    if below:
        text += f"; below it beyond noise: {', '.join(below)}"
    return text + "."


def decision_text(decision: Decision | None) -> str:
    """Which labels a model's label metrics are computed at."""
    if decision is None:
        return "n/a"
    if decision.kind == "threshold":
        return f"threshold {decision.threshold:.3f} on P({decision.positive}), {decision.objective}"
    weighted = decision.class_weights and any(w != 1.0 for w in decision.class_weights)
    return "argmax × class weights" if weighted else "argmax"


def interval_text(interval: Interval | None) -> str:
    """The interval's bounds, or n/a."""
    return "n/a" if interval is None else f"[{interval.low:.4f}, {interval.high:.4f}]"


def models_section(data: ReportData) -> str:
    """The base rate and every model: test metrics, the headline metric's interval, standing."""
    profile, a = data.profile, data.assessment
    if profile is None:
        return note("No data profile (data/processed/profile.json): run the ETL first.")
    classification = profile.is_classification
    names = CLASSIFICATION_METRICS if classification else REGRESSION_METRICS
    labels_from = ["labels from"] if classification else []
    interval = f"test {a.metric if a else names[0]} 95% interval"
    headers = ["model", *labels_from, *names, interval, "standing"]
    rows = [model_row(m, data, names, len(headers)) for m in data.models]
    if a is None:
        return table(headers, rows, "truth")
    base = [BASE, *(["majority class"] if classification else []), *(a.base.get(m) for m in names)]
    base += [interval_text(a.intervals.get(BASE)), "–"]
    return "".join(
        [
            table(headers, [[cell(v, "base") for v in base], *rows], "truth"),
            note(f"Base rate: {a.base_what}. Red cells are worse than the base rate."),
            majority(data) if classification else "",
            note(
                "Intervals: 95% percentile bootstrap over resampled test rows (seeded, the same "
                "resamples for every model). Models whose interval overlaps the best one's are "
                "within noise of it and are not ranked."
            ),
        ]
    )


def model_row(
    model: ModelResult, data: ReportData, names: tuple[str, ...], width: int
) -> list[str]:
    """A model's cells, red where worse than the base rate; one cell saying why it has none."""
    champion = data.contract.champion if data.contract else None
    badge = '<span class="badge">champion</span>' if model.name == champion else ""
    name = f'<td class="text" data-model="{esc(model.name)}">{esc(model.name)}{badge}</td>'
    entry, a = model.card.entry if model.card else None, data.assessment
    if entry is None:
        why = f"skipped: {model.card.skipped}" if model.card else "not run: no card yet"
        return [name, f'<td class="text muted" colspan="{width - 1}">{esc(why)}</td>']
    cells = [name]
    if data.profile and data.profile.is_classification:
        cells.append(cell(decision_text(entry.decision)))
    test, base = entry.metrics.get("test", {}), a.base if a else {}
    for m in names:
        value, floor = test.get(m), base.get(m)
        worse = value is not None and floor is not None and improvement(m, value, floor) < 0
        cells.append(cell(value, "worse" if worse else ""))
    interval = a.intervals.get(model.name) if a else None
    standing = a.standing.get(model.name, "n/a") if a else "n/a"
    return [*cells, cell(interval_text(interval)), cell(standing)]


def majority(data: ReportData) -> str:
    """Each model's accuracy at its decision beside always predicting the majority class."""
    assert data.assessment is not None
    shown = ", ".join(
        f"{m.name} {fmt(m.card.entry.metrics.get('test', {}).get('accuracy'))}"
        for m in data.trained
        if m.card and m.card.entry
    )
    base = fmt(data.assessment.base.get("accuracy"))
    text = f"Accuracy on test: majority class {base}; at each model's decision: {shown}."
    return f'<p id="majority">{esc(text)}</p>'


def plots_section(data: ReportData) -> str:
    """Every plot each model stage wrote, reliability and threshold or residual plots first."""
    parts = [
        note(
            "Drawn by each model stage from its test predictions (plots/<model>/): reliability "
            "diagrams, precision, recall and F1 against the threshold with the chosen one marked "
            "(binary tasks), predicted against actual and residuals (regression)."
        )
    ]
    for model in data.trained:
        figures = "".join(image(png, f"{model.name} · {kind}") for kind, png in model.plots)
        parts.append(
            f"<h3>{esc(model.name)}</h3>"
            + (f'<div class="grid">{figures}</div>' if figures else note("no plots written"))
        )
    return "".join(parts)
