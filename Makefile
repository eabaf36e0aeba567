# The README's commands. Each creates (or reuses) the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/var/dagster_home
export HF_HUB_OFFLINE ?= 1
JOB ?= answer_job
# Run config for `make run` (a YAML file); empty: the job's default, config/answer_job.yaml.
RUN_CONFIG ?=

.PHONY: run test ui lint bench lineage clean

$(BIN)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: config/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp $< $@

## run: the main job on the sample: dumps to submission.csv and its score (recomputes only what changed)
run: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster job execute -m pipeline.definitions -j $(JOB) $(if $(RUN_CONFIG),-c $(RUN_CONFIG))

## lineage: what changed upstream of the score between its latest two materialisations
lineage: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m assets.lineage

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
