"""The serving contract written by the export stage (`models/export/contract.json`).

Only the parts the server relies on are typed here; the whole JSON is kept for `/metadata`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

CONTRACT_FILE = "contract.json"
FIELD_TYPES = ("number", "category", "boolean", "datetime", "text")


class ContractError(Exception):
    """The models directory or its contract cannot be served; the message says what and how."""


@dataclass(frozen=True)
class FieldSpec:
    """One raw input field as a caller sends it."""

    name: str
    type: str
    nullable: bool
    max_length: int | None = None  # strings only
    categories: tuple[str, ...] = ()  # category fields: the values seen in training


@dataclass(frozen=True)
class ModelSpec:
    """One exported model: its file, checksum, kind and how to feed it."""

    name: str
    file: str
    sha256: str
    kind: str  # "tabular" | "text"
    inputs: list[dict[str, Any]]
    output: str  # name of the probabilities (tabular) or logits (text) graph output
    version: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Contract:
    """Parsed contract.json."""

    path: Path
    labels: list[str]
    id_field: str | None
    input_schema: list[FieldSpec]
    models: dict[str, ModelSpec]
    champion: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def directory(self) -> Path:
        return self.path.parent


def _where(path: Path, key: str) -> str:
    return f"{path}: key {key!r}"


def _field(path: Path, item: dict[str, Any], index: int) -> FieldSpec:
    name = item.get("name")
    kind = item.get("type")
    if not isinstance(name, str) or kind not in FIELD_TYPES:
        raise ContractError(
            f"{_where(path, f'input_schema[{index}]')}: expected a name and a type in "
            f"{FIELD_TYPES}, found {item!r}; fix: re-run the export stage (dvc repro export)"
        )
    max_length = item.get("max_length")
    return FieldSpec(
        name=name,
        type=kind,
        nullable=bool(item.get("nullable", False)),
        max_length=int(max_length) if max_length is not None else None,
        categories=tuple(str(c) for c in item.get("categories") or ()),
    )


def _model(path: Path, name: str, item: dict[str, Any]) -> ModelSpec:
    try:
        kind = item["kind"]
        outputs = item.get("outputs") or {}
        output = outputs.get("probabilities" if kind == "tabular" else "logits")
        if kind not in ("tabular", "text") or not isinstance(output, str):
            raise KeyError("kind/outputs")
        mlflow = item.get("mlflow") or {}
        version = str(item.get("version") or mlflow.get("version") or "unversioned")
        return ModelSpec(
            name=name,
            file=item["file"],
            sha256=str(item["sha256"]).lower(),
            kind=kind,
            inputs=list(item.get("inputs") or []),
            output=output,
            version=version,
            raw=item,
        )
    except KeyError as exc:
        raise ContractError(
            f"{_where(path, f'models.{name}')}: missing or invalid {exc.args[0]!r} (need file, "
            "sha256, kind tabular|text and outputs); fix: re-run the export stage"
        ) from None


def load_contract(models_dir: Path) -> Contract:
    """Read and check contract.json; raise ContractError with a one-line fix when unusable."""
    path = Path(models_dir) / CONTRACT_FILE
    if not Path(models_dir).is_dir():
        raise ContractError(
            f"models directory {models_dir} not found; fix: run `make repro` "
            "(or `dvc repro export`) first, or pass --models-dir"
        )
    if not path.is_file():
        raise ContractError(f"{path} not found; fix: run `make repro` (or `dvc repro export`)")
    try:
        raw = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"{path}: not valid JSON ({exc}); fix: re-run the export") from None
    if not isinstance(raw, dict) or not raw.get("models") or not raw.get("input_schema"):
        raise ContractError(f"{path}: expected 'models' and 'input_schema'; fix: re-run export")
    schema = [_field(path, f, i) for i, f in enumerate(raw["input_schema"])]
    models = {name: _model(path, name, spec) for name, spec in raw["models"].items()}
    champion = raw.get("champion") or next(iter(models))
    if champion not in models:
        raise ContractError(
            f"{_where(path, 'champion')}: {champion!r} is not one of the "
            f"models {sorted(models)}; fix: re-run the export stage"
        )
    return Contract(
        path=path,
        labels=[str(x) for x in raw.get("labels") or []],
        id_field=raw.get("id"),
        input_schema=schema,
        models=models,
        champion=champion,
        raw=raw,
    )


def verified_bytes(contract: Contract, spec: ModelSpec) -> bytes:
    """Read a model file once and check it against the contract's SHA-256 before it is loaded."""
    path = contract.directory / spec.file
    if not path.is_file():
        raise ContractError(f"{path} (model {spec.name}) not found; fix: re-run the export stage")
    data = path.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != spec.sha256:
        raise ContractError(
            f"{path}: SHA-256 {found} does not match the contract's {spec.sha256} (model "
            f"{spec.name}); the file changed after export — fix: re-run the export stage"
        )
    return data


def with_int8_text(contract: Contract) -> Contract:
    """The contract with its text model replaced by the int8 variant the export stage wrote."""
    quantized = (contract.raw.get("quantized") or {}).get("text_model")
    text = next((m for m in contract.models.values() if m.kind == "text"), None)
    if text is None or not isinstance(quantized, dict) or "file" not in quantized:
        raise ContractError(
            f"{contract.path}: --text-int8 needs a text model and a 'quantized.text_model' entry; "
            "fix: export with export.quantize=true, or drop --text-int8"
        )
    int8 = replace(
        text,
        file=str(quantized["file"]),
        sha256=str(quantized["sha256"]).lower(),
        version=f"{text.version}+int8",
    )
    return replace(contract, models={**contract.models, text.name: int8})
