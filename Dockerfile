#
# Two images from one file (docs/docker.md):
#   serving  slim CPU inference API: ONNX Runtime, tokenizers and the server, models baked in or
#            mounted at /app/models/export; no torch, no training code; runs as a non-root user.
#   train    the whole pipeline (`dvc repro`) on CPU, or on GPUs with a CUDA base image:
#            --build-arg TRAIN_BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
#            --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
#
#   docker build --target serving -t ml-pipeline-template:serving .
#   docker build --target train   -t ml-pipeline-template:train .
#
# The base is pinned to an exact Python patch release and Debian release; pin the digest too for
# byte-for-byte rebuilds (see docs/docker.md):
#   --build-arg PYTHON_IMAGE=python:3.11.7-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
ARG TRAIN_BASE_IMAGE=${PYTHON_IMAGE}

# ---------------------------------------------------------------------------------------------
# serving-deps: the serving virtualenv, built apart so the final image holds no pip cache or
# build leftovers.
FROM ${PYTHON_IMAGE} AS serving-deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
COPY requirements/serving.txt /tmp/serving.txt
RUN /opt/venv/bin/pip install --no-cache-dir --require-virtualenv -r /tmp/serving.txt
# Then out go pip and setuptools (nothing installs at run time) and the parts of pyarrow batch
# scoring never loads: Arrow Flight, C++ headers and sources, its tests (~70 MB).
RUN /opt/venv/bin/pip uninstall --yes --require-virtualenv pip setuptools \
    && arrow=$(echo /opt/venv/lib/python3.*/site-packages/pyarrow) \
    && rm -rf "$arrow"/tests "$arrow"/include "$arrow"/includes "$arrow"/src \
        "$arrow"/*flight* "$arrow"/*.pxd "$arrow"/*.pyx

# ---------------------------------------------------------------------------------------------
# serving: `docker run -p 8000:8000 ml-pipeline-template:serving`
FROM ${PYTHON_IMAGE} AS serving
LABEL org.opencontainers.image.title="ml-pipeline-template serving" \
      org.opencontainers.image.description="ONNX Runtime inference API for the exported models"
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app
COPY --from=serving-deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
COPY --chown=10001:10001 serving/ /app/serving/
# The bracket makes this a wildcard: BuildKit copies models/export when it exists (after
# `dvc repro`) and nothing otherwise, for an image that gets its models from a volume mount.
COPY --chown=10001:10001 models/expor[t]/ /app/models/export/
USER 10001:10001
EXPOSE 8000
# Only the standard library: the slim base has no curl. Ready means every model loaded and warmed.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2).status == 200 else 1)"]
CMD ["python", "-m", "serving", "--host", "0.0.0.0", "--port", "8000", "--models", "/app/models/export"]

# ---------------------------------------------------------------------------------------------
# train: the pipeline's environment; the checkout is mounted at /workspace (docs/docker.md):
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD":/workspace ml-pipeline-template:train
FROM ${TRAIN_BASE_IMAGE} AS train
# The pinned torch==2.13.0 resolves to the build this index serves (+cpu, +cu128, ...).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# git: DVC and the lineage tags read the checkout; libgomp1: LightGBM's OpenMP runtime, which
# slim and CUDA runtime bases lack. Python comes with the python image; CUDA images have none,
# so it is installed from the distribution there (Ubuntu 24.04: 3.12).
# Debian/Ubuntu package versions are not pinned: the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git libgomp1 \
    && if ! command -v python3 >/dev/null; then \
        apt-get install -y --no-install-recommends python3 python3-venv; \
    fi \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*' \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    HF_HOME=/tmp/huggingface \
    HF_HUB_OFFLINE=1
# Dependencies first (cached while only the code changes): the project metadata alone installs
# every dependency of the `pipeline` extra, pinned by the lock file.
COPY requirements/lock.txt /src/requirements/lock.txt
COPY pyproject.toml README.md /src/
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" \
        -c /src/requirements/lock.txt "/src[pipeline]"
COPY pipeline/ /src/pipeline/
COPY serving/ /src/serving/
RUN pip install --no-cache-dir --no-deps --force-reinstall /src \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /tmp --no-create-home app
WORKDIR /workspace
USER 10001:10001
CMD ["dvc", "repro"]
