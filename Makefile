# The README's commands. Each creates (or reuses) the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/var/dagster_home
export HF_HUB_OFFLINE ?= 1
JOB ?= answer_job

.PHONY: run test ui lint bench clean

$(BIN)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: config/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp $< $@

## run: the main job on the sample dump: dumps to contexts (recomputes only what changed)
run: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster job execute -m pipeline.definitions -j $(JOB)

## test: the test suite
test: $(BIN)/.installed
	$(BIN)/python -m pytest

## ui: the Dagster web UI on http://127.0.0.1:3000, sharing the run history of `make run`
ui: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

lint: $(BIN)/.installed
	$(BIN)/ruff check .

bench: $(BIN)/.installed
	$(BIN)/python bench/ingest.py

clean:
	rm -rf var
