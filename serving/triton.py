"""Generate a Triton Inference Server / KServe model repository from the exported ONNX models.

    python -m serving.triton --models models/export --out build/triton

writes

    build/triton/model_repository/<model>/config.pbtxt  onnxruntime_onnx, I/O read from the file
    build/triton/model_repository/<model>/1/model.onnx
    build/triton/inferenceservice.yaml                  a KServe InferenceService using Triton
    build/triton/contract.json                          labels and input schema, for clients

Inputs and outputs (names, data types, dims) are read from each ONNX file with ONNX Runtime, so
the configuration always matches the graph. Triton runs the graphs only: the local server's work
outside the graph (validation, deriving features, tokenizing) stays with the client; see
docs/scaling.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.runtime import ModelFileError, verified_bytes
from serving.schemas import CONTRACT_FILE, Contract, FileError, read_file

REPOSITORY_DIR = "model_repository"
KSERVE_FILE = "inferenceservice.yaml"
VERSION = "1"  # Triton serves numbered version folders; the contract carries the real lineage

# ONNX Runtime's type strings → Triton's DataType enum names (model_config.proto).
TRITON_TYPES = {
    "tensor(bool)": "TYPE_BOOL",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32",
    "tensor(uint64)": "TYPE_UINT64",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(float16)": "TYPE_FP16",
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
    "tensor(string)": "TYPE_STRING",
    "tensor(bfloat16)": "TYPE_BF16",
}


class TritonExportError(Exception):
    """The export directory cannot be turned into a Triton repository (message says why and how)."""


@dataclass(frozen=True)
class Tensor:
    """One graph input or output: name, Triton data type and full shape (-1 = dynamic)."""

    name: str
    data_type: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class TritonOptions:
    """Repository settings: batching, instances and where they run."""

    max_batch_size: int = 256  # per request and per dynamic batch; 0 turns batching off
    max_queue_delay_us: int = 1000  # how long Triton waits to fill a dynamic batch
    instance_count: int = 1
    kind: str = "KIND_CPU"  # KIND_GPU on a GPU node
    service_name: str = "ml-pipeline-template"
    storage_uri: str = "s3://YOUR-BUCKET/ml-pipeline-template/model_repository"


def read_io(onnx_path: Path) -> tuple[list[Tensor], list[Tensor]]:
    """Inputs and outputs of an ONNX file as ONNX Runtime sees them."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def convert(args: Sequence[Any]) -> list[Tensor]:
        tensors = []
        for arg in args:
            if arg.type not in TRITON_TYPES:
                raise TritonExportError(
                    f"{onnx_path}: tensor '{arg.name}' has type {arg.type}, which Triton's ONNX "
                    "backend does not take — fix: export it as a plain tensor (ZipMap off)"
                )
            shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in arg.shape)
            tensors.append(Tensor(arg.name, TRITON_TYPES[arg.type], shape))
        return tensors

    return convert(session.get_inputs()), convert(session.get_outputs())


def batchable(tensors: Sequence[Tensor]) -> bool:
    """Triton batches a model only if every tensor's first axis is the dynamic batch axis."""
    return all(len(t.shape) >= 1 and t.shape[0] == -1 for t in tensors)


def _tensor_list(kind: str, tensors: Sequence[Tensor], batched: bool) -> str:
    entries = []
    for tensor in tensors:
        dims = list(tensor.shape[1:] if batched else tensor.shape)
        lines = [f'    name: "{tensor.name}"', f"    data_type: {tensor.data_type}"]
        if not dims:
            # A [batch] tensor: Triton wants dims [1] and a reshape to the scalar per item.
            lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
        else:
            lines.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
        entries.append("  {\n" + "\n".join(lines) + "\n  }")
    return f"{kind} [\n" + ",\n".join(entries) + "\n]"


def config_pbtxt(
    name: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor], options: TritonOptions
) -> str:
    """Triton's model configuration (protobuf text format) for one ONNX model."""
    batched = options.max_batch_size > 0 and batchable([*inputs, *outputs])
    parts = [
        f'name: "{name}"',
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {options.max_batch_size if batched else 0}",
    ]
    parts += [_tensor_list("input", inputs, batched), _tensor_list("output", outputs, batched)]
    parts.append(
        f"instance_group [\n  {{\n    count: {options.instance_count}\n"
        f"    kind: {options.kind}\n  }}\n]"
    )
    if batched:
        parts.append(
            f"dynamic_batching {{\n  max_queue_delay_microseconds: {options.max_queue_delay_us}\n}}"
        )
    return "\n".join(parts) + "\n"


def inference_service_yaml(options: TritonOptions) -> str:
    """A KServe InferenceService serving the repository with Triton (Open Inference Protocol)."""
    resource = "nvidia.com/gpu: 1" if options.kind == "KIND_GPU" else 'cpu: "2"'
    return f"""\
# KServe InferenceService serving the Triton model repository generated next to this file.
# Copy model_repository/ to the storage URI (s3://, gs://, pvc://), then:
#   kubectl apply -f {KSERVE_FILE}
# Call: POST http://<host>/v2/models/<model>/infer (Open Inference Protocol, v2).
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {options.service_name}
spec:
  predictor:
    model:
      modelFormat:
        name: triton
      protocolVersion: v2
      runtime: kserve-tritonserver
      storageUri: {options.storage_uri}
      resources:
        requests:
          cpu: "1"
          memory: 2Gi
        limits:
          {resource}
          memory: 4Gi
"""


def find_models(models_dir: Path) -> dict[str, Path]:
    """Model name → ONNX file, from the contract; each file checked against its SHA-256 and
    confined to the models directory (`serving.runtime.verified_bytes`)."""
    try:
        contract = read_file(models_dir / CONTRACT_FILE, Contract)
        for entry in contract.models.values():
            verified_bytes(models_dir, entry.file, entry.sha256, f"model {entry.name}")
    except (FileError, ModelFileError) as exc:
        raise TritonExportError(str(exc)) from None
    return {name: models_dir / entry.file for name, entry in contract.models.items()}


def build_repository(
    models_dir: Path, out_dir: Path, options: TritonOptions | None = None
) -> dict[str, Path]:
    """Write the Triton repository, the KServe manifest and the contract copy; returns the models.

    The output folder is built beside `out_dir` and swapped in whole, so an interrupted run
    leaves the previous repository or none.
    """
    options = options or TritonOptions()
    models = find_models(models_dir)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        for name, onnx_path in models.items():
            inputs, outputs = read_io(onnx_path)
            model_dir = staging / REPOSITORY_DIR / name
            (model_dir / VERSION).mkdir(parents=True)
            shutil.copyfile(onnx_path, model_dir / VERSION / "model.onnx")
            text = config_pbtxt(name, inputs, outputs, options)
            (model_dir / "config.pbtxt").write_text(text, encoding="utf-8")
        (staging / KSERVE_FILE).write_text(inference_service_yaml(options), encoding="utf-8")
        contract = models_dir / CONTRACT_FILE
        if contract.is_file():
            shutil.copyfile(contract, staging / CONTRACT_FILE)
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: out_dir / REPOSITORY_DIR / name for name in models}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: `python -m serving.triton --models models/export --out build/triton`."""
    parser = argparse.ArgumentParser(
        prog="python -m serving.triton", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--models", type=Path, default=Path("models/export"))
    parser.add_argument("--out", type=Path, default=Path("build/triton"))
    parser.add_argument("--max-batch-size", type=int, default=TritonOptions.max_batch_size)
    parser.add_argument("--max-queue-delay-us", type=int, default=TritonOptions.max_queue_delay_us)
    parser.add_argument("--instances", type=int, default=TritonOptions.instance_count)
    parser.add_argument("--gpu", action="store_true", help="run instances on GPUs (KIND_GPU)")
    parser.add_argument("--storage-uri", default=TritonOptions.storage_uri)
    parser.add_argument("--service-name", default=TritonOptions.service_name)
    args = parser.parse_args(argv)
    options = TritonOptions(
        max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        instance_count=args.instances,
        kind="KIND_GPU" if args.gpu else "KIND_CPU",
        service_name=args.service_name,
        storage_uri=args.storage_uri,
    )
    try:
        written = build_repository(args.models, args.out, options)
    except TritonExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} model(s) → {args.out / REPOSITORY_DIR}: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
