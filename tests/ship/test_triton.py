"""The Triton / KServe repository generated from models/export (serving/triton.py), each
config.pbtxt read back with the protobuf text parser against Triton's own field definitions.
(tests/serving/test_triton.py covers the CLI's happy path and the tritonclient calls.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from serving.schemas import Contract, read_file
from serving.triton import REPOSITORY_DIR, TritonExportError, TritonOptions, build_repository

# The part of Triton's model_config.proto (triton-inference-server/common) that the generator
# writes, with the same field numbers and enum values, so the real protobuf text parser checks
# every field name, type and enum spelling.
_DATA_TYPES = [
    "TYPE_INVALID",
    "TYPE_BOOL",
    "TYPE_UINT8",
    "TYPE_UINT16",
    "TYPE_UINT32",
    "TYPE_UINT64",
    "TYPE_INT8",
    "TYPE_INT16",
    "TYPE_INT32",
    "TYPE_INT64",
    "TYPE_FP16",
    "TYPE_FP32",
    "TYPE_FP64",
    "TYPE_STRING",
    "TYPE_BF16",
]
_F = descriptor_pb2.FieldDescriptorProto


def _model_config_class() -> Any:
    fdp = descriptor_pb2.FileDescriptorProto(name="tiny_model_config.proto", package="inference")
    fdp.syntax = "proto3"
    dtype = fdp.enum_type.add(name="DataType")
    for number, name in enumerate(_DATA_TYPES):
        dtype.value.add(name=name, number=number)

    def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            field = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = type_name

    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message("ModelTensorReshape", [("shape", 1, _F.TYPE_INT64, rep, "")])
    for name, dims_number in (("ModelInput", 4), ("ModelOutput", 3)):
        message(
            name,
            [
                ("name", 1, _F.TYPE_STRING, opt, ""),
                ("data_type", 2, _F.TYPE_ENUM, opt, ".inference.DataType"),
                ("dims", dims_number, _F.TYPE_INT64, rep, ""),
                ("reshape", 5, _F.TYPE_MESSAGE, opt, ".inference.ModelTensorReshape"),
            ],
        )
    group = fdp.message_type.add(name="ModelInstanceGroup")
    kind = group.enum_type.add(name="Kind")
    for number, name in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=name, number=number)
    group.field.add(name="count", number=2, type=_F.TYPE_INT32, label=opt)
    group.field.add(
        name="kind",
        number=4,
        type=_F.TYPE_ENUM,
        label=opt,
        type_name=".inference.ModelInstanceGroup.Kind",
    )
    message(
        "ModelDynamicBatching",
        [
            ("preferred_batch_size", 1, _F.TYPE_INT32, rep, ""),
            ("max_queue_delay_microseconds", 2, _F.TYPE_UINT64, opt, ""),
        ],
    )
    message(
        "ModelConfig",
        [
            ("name", 1, _F.TYPE_STRING, opt, ""),
            ("platform", 2, _F.TYPE_STRING, opt, ""),
            ("max_batch_size", 4, _F.TYPE_INT32, opt, ""),
            ("input", 5, _F.TYPE_MESSAGE, rep, ".inference.ModelInput"),
            ("output", 6, _F.TYPE_MESSAGE, rep, ".inference.ModelOutput"),
            ("instance_group", 7, _F.TYPE_MESSAGE, rep, ".inference.ModelInstanceGroup"),
            ("dynamic_batching", 11, _F.TYPE_MESSAGE, opt, ".inference.ModelDynamicBatching"),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


ModelConfig = _model_config_class()


def parse_config(path: Path) -> Any:
    return text_format.Parse(path.read_text(encoding="utf-8"), ModelConfig())


def by_name(tensors: Any) -> dict[str, Any]:
    return {t.name: t for t in tensors}


ROOT = Path(__file__).resolve().parents[2]
DTYPES = {"float32": "TYPE_FP32", "float64": "TYPE_FP64", "int64": "TYPE_INT64"}
DTYPES["string"] = "TYPE_STRING"


def contract_of(export_dir: Path) -> Contract:
    return read_file(export_dir / "contract.json", Contract)


def test_every_exported_model_gets_a_triton_model(export_dir: Path, tmp_path: Path) -> None:
    contract = contract_of(export_dir)
    out = tmp_path / "build" / "triton"
    written = build_repository(export_dir, out)
    assert sorted(written) == sorted(contract.models) == ["baseline", "forest", "text_model"]
    for name, entry in contract.models.items():
        model_dir = out / REPOSITORY_DIR / name
        assert entry.file == f"{name}/model.onnx"
        onnx = (model_dir / "1" / "model.onnx").read_bytes()
        assert onnx == (export_dir / name / "model.onnx").read_bytes()
        config = parse_config(model_dir / "config.pbtxt")
        assert config.name == name
        assert config.platform == "onnxruntime_onnx"
    copied = read_file(out / "contract.json", Contract)
    assert copied == contract and copied.champion == "baseline"


def test_tabular_config_matches_the_graph(export_dir: Path, tmp_path: Path) -> None:
    entry = contract_of(export_dir).models["baseline"]
    build_repository(export_dir, tmp_path / "t", TritonOptions(max_batch_size=128))
    config = parse_config(tmp_path / "t" / REPOSITORY_DIR / "baseline" / "config.pbtxt")
    assert config.max_batch_size == 128
    inputs, outputs = by_name(config.input), by_name(config.output)
    # [N, 1] per column: the batch axis is Triton's, one value per row remains.
    assert set(inputs) == {i.name for i in entry.inputs}
    assert {i.dtype for i in entry.inputs} >= {"float32", "string"}
    for graph_input in entry.inputs:
        assert list(inputs[graph_input.name].dims) == [1], graph_input
        expected = _DATA_TYPES.index(DTYPES[graph_input.dtype])
        assert inputs[graph_input.name].data_type == expected, graph_input
    assert entry.outputs.probabilities == "probabilities"
    assert list(outputs["probabilities"].dims) == [2]
    assert outputs["probabilities"].data_type == _DATA_TYPES.index("TYPE_FP32")
    # The graph's [N] label output becomes dims [1] reshaped to a scalar per row.
    assert list(outputs["label"].dims) == [1]
    assert outputs["label"].HasField("reshape") and list(outputs["label"].reshape.shape) == []
    assert outputs["label"].data_type == _DATA_TYPES.index("TYPE_INT64")
    assert config.dynamic_batching.max_queue_delay_microseconds == 1000
    assert config.instance_group[0].kind == 2 and config.instance_group[0].count == 1  # KIND_CPU


def test_text_config_keeps_the_dynamic_sequence_axis(export_dir: Path, tmp_path: Path) -> None:
    build_repository(export_dir, tmp_path / "t", TritonOptions(kind="KIND_GPU", instance_count=2))
    config = parse_config(tmp_path / "t" / REPOSITORY_DIR / "text_model" / "config.pbtxt")
    inputs = by_name(config.input)
    assert set(inputs) == {"input_ids", "attention_mask"}
    assert all(list(t.dims) == [-1] for t in inputs.values())
    assert all(t.data_type == _DATA_TYPES.index("TYPE_INT64") for t in inputs.values())
    # Softmax is inside the graph: Triton returns the probabilities the contract names.
    assert list(by_name(config.output)) == ["probabilities"]
    assert list(by_name(config.output)["probabilities"].dims) == [2]
    assert config.instance_group[0].kind == 1 and config.instance_group[0].count == 2  # KIND_GPU


def test_batching_off_keeps_full_shapes(export_dir: Path, tmp_path: Path) -> None:
    build_repository(export_dir, tmp_path / "t", TritonOptions(max_batch_size=0))
    config = parse_config(tmp_path / "t" / REPOSITORY_DIR / "text_model" / "config.pbtxt")
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")
    assert list(by_name(config.input)["input_ids"].dims) == [-1, -1]
    assert list(by_name(config.output)["probabilities"].dims) == [-1, 2]


def test_kserve_manifest(export_dir: Path, tmp_path: Path) -> None:
    options = TritonOptions(storage_uri="s3://bucket/repo", service_name="churn")
    build_repository(export_dir, tmp_path / "t", options)
    manifest = yaml.safe_load((tmp_path / "t" / "inferenceservice.yaml").read_text())
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["kind"] == "InferenceService"
    assert manifest["metadata"]["name"] == "churn"
    model = manifest["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "triton"
    assert model["storageUri"] == "s3://bucket/repo"
    assert model["protocolVersion"] == "v2"


def test_tampered_model_is_refused_and_old_output_kept(export_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t"
    build_repository(export_dir, out)
    before = (out / REPOSITORY_DIR / "forest" / "config.pbtxt").read_text()
    (export_dir / "forest" / "model.onnx").write_bytes(b"not the exported model")
    with pytest.raises(TritonExportError, match="SHA-256"):
        build_repository(export_dir, out)
    assert (out / REPOSITORY_DIR / "forest" / "config.pbtxt").read_text() == before
    assert not list(tmp_path.glob(".t.tmp-*"))


def test_a_model_file_outside_the_export_is_refused(export_dir: Path, tmp_path: Path) -> None:
    contract = json.loads((export_dir / "contract.json").read_text())
    contract["models"]["forest"]["file"] = "../forest.onnx"
    (export_dir / "contract.json").write_text(json.dumps(contract))
    with pytest.raises(TritonExportError, match="leaves"):
        build_repository(export_dir, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving.triton", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_cli_reports_missing_export_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "models" / "export"
    empty.mkdir(parents=True)
    proc = _cli("--models", str(empty), "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "dvc repro export" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_cli_writes_the_repository(export_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _cli("--models", str(export_dir), "--out", str(out), "--max-batch-size", "32")
    assert proc.returncode == 0, proc.stderr
    assert "3 model(s)" in proc.stdout
    config = parse_config(out / REPOSITORY_DIR / "baseline" / "config.pbtxt")
    assert config.max_batch_size == 32
