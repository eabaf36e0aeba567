# The README's commands. Each creates (or reuses) the virtual environment it needs.
# The interpreter the environment is made with: Python 3.11 (python3.11 if on the PATH).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Your own DAGSTER_HOME, if set, is kept; else the instance lives in the working area.
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home
export HF_HUB_OFFLINE ?= 1
JOB ?= answer_job
# Run config for `make run` (a YAML file), deep-merged over the job's default
# (config/answer_job.yaml for answer_job): what it sets wins, what it leaves out keeps the default.
RUN_CONFIG ?=
JOB_CONFIG := $(if $(filter answer_job,$(JOB)),-c config/answer_job.yaml)

.PHONY: run test ui lint bench lineage clean distclean

# llama.cpp (the heavy reader's runtime) is compiled at install for this CPU: a portable AVX2
# build, with AVX-512 where /proc/cpuinfo lists it, and never the AMX backend (its first decode
# segfaults on the AMX machines these jobs may land on). No multimodal library: nothing uses it.
cpu_has = $(if $(shell grep -m1 -ow '$(1)' /proc/cpuinfo 2>/dev/null),ON,OFF)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=$(call cpu_has,avx512f) -DGGML_AVX512_VNNI=$(call cpu_has,avx512_vnni) \
	-DGGML_AVX512_VBMI=$(call cpu_has,avx512_vbmi) -DGGML_AVX512_BF16=$(call cpu_has,avx512_bf16) \
	-DGGML_AVX_VNNI=$(call cpu_has,avx_vnni) \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF

$(BIN)/.installed: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else \
		"Python 3.11 is needed; $(PYTHON) is " + sys.version.split()[0] + \
		": run make PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet \
		-c requirements.lock -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: config/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp $< $@

## run: the main job on the sample: dumps to submission.csv and its score (recomputes only what changed)
run: $(BIN)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m assets.run_guard
	$(BIN)/dagster job execute -m definitions -j $(JOB) $(JOB_CONFIG) \
		$(if $(RUN_CONFIG),-c $(RUN_CONFIG)); status=$$?; \
		$(BIN)/python -m assets.run_summary; exit $$status

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

## clean: delete the run's state (warehouse, indexes, Dagster home, trained readers, submission);
## the assembled models in var/models stay (a 1.1 GB download to assemble again)
clean:
	rm -rf var/warehouse.duckdb var/warehouse.duckdb.wal var/index var/dagster_home var/readers \
		var/submission.csv

## distclean: delete the whole working area var/, assembled models included, and .venv
distclean:
	rm -rf var $(VENV)
