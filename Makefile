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
