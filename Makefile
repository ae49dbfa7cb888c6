# Every target sets up .venv first when needed, so a fresh clone needs only python3, git and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
MODELS ?= models/export
IMAGE ?= ml-pipeline-template

# Stage commands in dvc.yaml call `python`: put the project's venv first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
export PYTHONHASHSEED := 0

.PHONY: help setup repro test lint format smoke serve predict ui bench docker triton lock clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-8s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements/lock.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/lock.txt -e '.[pipeline,dev]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the project with its dev tools (quick when up to date)

repro: setup ## Run the whole pipeline with DVC (only what changed)
	@# The config stage first: dvc.yaml reads the selected data's path from params.yaml.
	$(BIN)/dvc repro --single-item config
	$(BIN)/dvc repro

test: setup ## Run the default test suite (slow and gpu tests deselected)
	$(BIN)/pytest

lint: setup ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

smoke: setup ## Whole pipeline on the tiny profile in a temporary copy (a couple of minutes)
	$(BIN)/python -m tests.smoke

serve: setup ## Start the inference API on HOST:PORT (default 127.0.0.1:8000) from models/export
	$(BIN)/python -m serving --host $(HOST) --port $(PORT) --models $(MODELS)

predict: setup ## Score a file: make predict INPUT=<csv|parquet|jsonl> OUTPUT=<parquet> [MODEL=name]
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make predict INPUT=file OUTPUT=file.parquet [MODEL=name]"; exit 2; }
	$(BIN)/python -m serving.batch $(INPUT) $(OUTPUT) --models $(MODELS) $(if $(MODEL),--model $(MODEL))

ui: setup ## MLflow UI for the embedded tracking database, on 127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

bench: setup ## Run every benchmark; writes bench/out/results.json and bench/RESULTS.md
	$(BIN)/python bench/run_all.py

triton: setup ## Generate a Triton/KServe model repository from models/export into build/triton
	$(BIN)/python -m serving.triton --models $(MODELS) --out build/triton

docker: ## Build the serving image and the training image (needs a Docker engine)
	docker build --target serving -t $(IMAGE):serving .
	docker build --target train -t $(IMAGE):train .

lock: setup ## Re-pin requirements/lock.txt from the current .venv
	{ head -n 2 requirements/lock.txt; $(BIN)/python -m pip freeze --exclude-editable \
	  | sed -E 's/^(torch==[0-9.]+)\+[a-z0-9]+$$/\1/'; } > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt

clean: ## Remove pipeline outputs (data, models, metrics, plots, reports); keeps .venv and mlflow.db
	rm -rf data/raw/demo data/processed models/trained models/export metrics plots reports build
