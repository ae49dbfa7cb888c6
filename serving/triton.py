"""Write a Triton Inference Server / KServe model repository from the exported ONNX models.

Each config.pbtxt takes its inputs and outputs from the ONNX file itself. Triton runs the graphs
only: checks, features and tokenizing stay with the client (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from serving.runtime import ModelFileError, cpu_session, verified_bytes
from serving.schemas import CONTRACT_FILE, Contract, FileError, read_file

REPOSITORY_DIR = "model_repository"
KSERVE_FILE = "inferenceservice.yaml"
VERSION = "1"  # Triton serves numbered version folders; the contract carries the real lineage

# ONNX Runtime's type strings → Triton's DataType enum names (model_config.proto).
_SAME = ("bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "string")
TRITON_TYPES = {f"tensor({t})": f"TYPE_{t.upper()}" for t in _SAME} | {
    "tensor(float16)": "TYPE_FP16",
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
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


def _tensor(arg: Any, where: str) -> Tensor:
    if arg.type not in TRITON_TYPES:
        raise TritonExportError(
            f"{where}: tensor '{arg.name}' has type {arg.type}, which Triton's ONNX "
            "backend does not take — fix: export it as a plain tensor (ZipMap off)"
        )
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in arg.shape)
    return Tensor(arg.name, TRITON_TYPES[arg.type], shape)


def _tensor_list(kind: str, tensors: Sequence[Tensor], batched: bool) -> str:
    entries = []
    for tensor in tensors:
        dims = tensor.shape[1:] if batched else tensor.shape
        lines = [f'    name: "{tensor.name}"', f"    data_type: {tensor.data_type}"]
        lines.append(f"    dims: {list(dims) or [1]}")
        if not dims:  # a [batch] tensor: Triton wants dims [1] and a reshape to the scalar per item
            lines.append("    reshape: { shape: [] }")
        entries.append("  {\n" + "\n".join(lines) + "\n  }")
    return f"{kind} [\n" + ",\n".join(entries) + "\n]"


def config_pbtxt(
    name: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor], options: TritonOptions
) -> str:
    """Triton's model configuration (protobuf text format) for one ONNX model."""
    # Triton batches a model only if every tensor's first axis is the dynamic batch axis.
    batched = options.max_batch_size > 0 and all(t.shape[:1] == (-1,) for t in [*inputs, *outputs])
    parts = [
        f'name: "{name}"',
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {options.max_batch_size if batched else 0}",
        _tensor_list("input", inputs, batched),
        _tensor_list("output", outputs, batched),
        f"instance_group [\n  {{\n    count: {options.instance_count}\n"
        f"    kind: {options.kind}\n  }}\n]",
    ]
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


def build_repository(
    models_dir: Path, out_dir: Path, options: TritonOptions | None = None
) -> dict[str, Path]:
    """Write the Triton repository, KServe manifest and contract copy; returns the models."""
    # Each graph must match the contract's SHA-256 and lie in `models_dir`; the output is built
    # beside `out_dir` and swapped in whole, so a failed run leaves the previous one.
    options = options or TritonOptions()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        contract = read_file(models_dir / CONTRACT_FILE, Contract)
        for name, entry in contract.models.items():
            onnx = verified_bytes(models_dir, entry.file, entry.sha256, f"model {name}")
            model_dir = staging / REPOSITORY_DIR / name
            (model_dir / VERSION).mkdir(parents=True)
            (model_dir / VERSION / "model.onnx").write_bytes(onnx)
            session, where = cpu_session(onnx), str(models_dir / entry.file)
            inputs = [_tensor(arg, where) for arg in session.get_inputs()]
            outputs = [_tensor(arg, where) for arg in session.get_outputs()]
            text = config_pbtxt(name, inputs, outputs, options)
            (model_dir / "config.pbtxt").write_text(text, encoding="utf-8")
        (staging / KSERVE_FILE).write_text(inference_service_yaml(options), encoding="utf-8")
        shutil.copyfile(models_dir / CONTRACT_FILE, staging / CONTRACT_FILE)
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except (FileError, ModelFileError) as exc:
        raise TritonExportError(str(exc)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: out_dir / REPOSITORY_DIR / name for name in contract.models}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: `python -m serving.triton --models models/export --out build/triton`."""
    parser = argparse.ArgumentParser(
        prog="python -m serving.triton", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--models", type=Path, default=Path("models/export"))
    parser.add_argument("--out", type=Path, default=Path("build/triton"))
    parser.set_defaults(**asdict(TritonOptions()))  # each option's dest is the field it sets
    parser.add_argument("--max-batch-size", type=int)
    parser.add_argument("--max-queue-delay-us", type=int)
    parser.add_argument("--instances", type=int, dest="instance_count")
    parser.add_argument(
        "--gpu", dest="kind", action="store_const", const="KIND_GPU", help="run instances on GPUs"
    )
    parser.add_argument("--storage-uri")
    parser.add_argument("--service-name")
    args = vars(parser.parse_args(argv))
    models, out = args.pop("models"), args.pop("out")
    try:
        written = build_repository(models, out, TritonOptions(**args))
    except TritonExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} model(s) → {out / REPOSITORY_DIR}: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
