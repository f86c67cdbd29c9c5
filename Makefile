# EQSMS Risk. `make help` lists the targets. Paths and parameters live in eqsms/settings.py (EQSMS_* env vars).
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
EQSMS := $(VENV)/bin/eqsms
STAMP := $(VENV)/.installed
WORK := $(or $(EQSMS_WORK_DIR),eqsms_work)

export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: help install run test test-fast lint format bench-features bench-training bench-serving bench-portfolio bench-load bench-predlog bench-loop bench-live-loop bench-dask-features bench-real bench-tune bench-refit bench-calibration sample-data notebooks clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	python3 -m uv venv --quiet --allow-existing --python 3.11 $(VENV)
	python3 -m uv pip install --quiet --python $(PY) --compile-bytecode -e ".[dev,pdf]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the pinned stack (uv, bytecode compiled)

run: $(STAMP) ## the main job on the embedded defaults: validate, build datasets, train and promote, ask the service
	$(EQSMS) validate
	$(EQSMS) features build
	$(EQSMS) train --promote
	$(PY) -m serving.smoke

test: $(STAMP) ## lint, then the whole test suite (what CI runs)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

test-fast: $(STAMP) ## the suite without the tests marked slow (real servers, bento, notebook, README runs)
	$(VENV)/bin/pytest -m "not slow"

lint: $(STAMP) ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench-training: $(STAMP) ## train all three models at 10,000 projects, quality against baselines and oracle
	$(PY) -m benchmarks.training

bench-serving: $(STAMP) ## the real server on 1,000 projects: latency, throughput, batch, against mlflow models serve
	$(PY) -m benchmarks.serving

bench-portfolio: $(STAMP) ## the board's portfolio at ~10,000 open projects: snapshot, GET /v1/portfolio, the page in Chromium
	$(PY) -m benchmarks.portfolio

bench-load: $(STAMP) ## 20,000 mixed requests at concurrency 32 on the real server, with and without a reload half-way
	$(PY) -m benchmarks.load

bench-predlog: $(STAMP) ## the prediction log alone: record() cost, rows written a second, file size per 1,000 predictions
	$(PY) -m benchmarks.predlog

bench-loop: $(STAMP) ## a year of weeks on a shifted world and its control: weeks to a drift flag, estimated vs realised AUC
	$(PY) -m benchmarks.loop

bench-live-loop: $(STAMP) ## the year with the real parts weekly: new export, server with the log, monitor, retrain (~1 h)
	$(PY) -m benchmarks.live_loop

bench-dask-features: $(STAMP) ## the Dask feature engine beside pandas at 10,000, 30,000 and 100,000 projects
	$(PY) -m benchmarks.dask_features

bench-real: $(STAMP) ## import the real exports in ../shared/real and backtest delay and defect risk
	$(PY) -m benchmarks.backtest_real

bench-refit: $(STAMP) ## the registered model refit on every row against the one fitted on 60%, on held-out latest rows
	$(PY) -m benchmarks.refit

bench-calibration: $(STAMP) ## the order-keeping calibrator against isotonic, sigmoid and none, at 10,000 projects
	$(PY) -m benchmarks.calibration

bench-tune: $(STAMP) ## `train --tune` (3 min a model) on 3,000 generated projects and the real exports: test rows tuned vs not
	$(PY) -m benchmarks.tune

bench-features: $(STAMP) ## read + validate + build datasets at 2,500, 5,000 and 10,000 projects (JSON in benchmarks/results)
	$(PY) -m benchmarks.features

notebooks: $(STAMP) ## run notebooks/explore_and_explain.py headless; the executed notebook goes to eqsms_work/notebooks/
	mkdir -p $(WORK)/notebooks
	$(VENV)/bin/jupytext --to notebook --output $(WORK)/notebooks/explore_and_explain.ipynb notebooks/explore_and_explain.py
	$(VENV)/bin/jupyter-execute --inplace $(WORK)/notebooks/explore_and_explain.ipynb

sample-data: $(STAMP) ## regenerate the committed sample world in data_samples/world
	$(EQSMS) generate --out data_samples/world

clean: ## remove outputs (eqsms_work, benchmark results), keep .venv
	rm -rf eqsms_work benchmarks/results
