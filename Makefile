# Two commands do all the set-up on a fresh machine: `make benchmark` and `make test`.
# Every target creates and uses the project virtualenv (.venv) on its own.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: help venv benchmark benchmark-sharded test test-slow lint preview data classifiers base-model spare-results baseline-runs equal-compute tuning ablation clean

help:
	@echo "make benchmark   run the benchmark on the embedded canvas-mini world"
	@echo "make test        run the test suite (slow checks: make test-slow)"
	@echo "make preview     render the canvas-mini preview grid to results/canvas_mini/preview.png"
	@echo "make classifiers train the style and object classifiers into models/canvas-mini-classifiers"
	@echo "make base-model  train (or resume) the canvas-mini base model into models/canvas-mini-base"
	@echo "make lint        ruff"

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The sweep: every target x method of a preset, resumable (finished jobs are skipped), then tables.
# `make benchmark PRESET=mini-full`, or split over processes with `make benchmark-sharded NPROC=2`.
PRESET ?= mini-quick
benchmark: $(STAMP)
	$(BIN)/spare benchmark --preset $(PRESET) $(ARGS)

NPROC ?= 2
benchmark-sharded: $(STAMP)
	$(BIN)/accelerate launch --multi_gpu --num_processes $(NPROC) --num_machines 1 --mixed_precision no \
		--dynamo_backend no -m spare benchmark --preset $(PRESET) $(ARGS)

preview: $(STAMP)
	$(BIN)/spare data preview

data: $(STAMP)
	$(BIN)/spare data build

# Train the canvas-mini style and object classifiers; ARGS takes key=value overrides.
classifiers: $(STAMP)
	$(BIN)/spare classifiers $(ARGS)

# Train (or resume) the canvas-mini base model; ARGS takes key=value overrides.
base-model: $(STAMP)
	$(BIN)/spare base-model $(ARGS)

# pytest exits 5 when it collected no test: that is a failure here, never a silent pass.
test: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-slow: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The SPARE figures of results/spare: one style and one object target (chosen before any
# result was seen), the default uniform timesteps and concept-aware timesteps at the same budget.
spare-results: $(STAMP)
	$(BIN)/spare unlearn --target style:Ink_Outline
	$(BIN)/spare unlearn --target object:Star
	$(BIN)/spare unlearn --target style:Ink_Outline --tag gap-timesteps timesteps.mode=gap
	$(BIN)/spare unlearn --target object:Star --tag gap-timesteps timesteps.mode=gap
	$(BIN)/python -m benchmarks.spare_report

# Every method on the reported SPARE targets at the shared budget rule: the mini-full preset on
# those two targets (resumes: finished runs are skipped), tables in results/baselines.
baseline-runs: $(STAMP)
	$(BIN)/spare benchmark --preset mini-full --targets style:Ink_Outline object:Star --results results/baselines

# The second baseline table: every method given SPARE's training wall time (calibrated here).
equal-compute: $(STAMP)
	$(BIN)/python -m benchmarks.equal_compute $(ARGS)

# The tuning grid (ablations/tuning.yaml, resumable) and each method's chosen point: results/tuning/.
tuning: $(STAMP)
	$(BIN)/spare ablation tuning $(ARGS)

# One ablation of ablations/<NAME>.yaml (resumable), tables and plot in results/ablations/<NAME>.
ablation: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make ablation NAME=<$$(ls ablations | sed 's/.yaml//' | paste -sd'|')>" >&2; exit 2; }
	$(BIN)/spare ablation $(NAME) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check spare evaluators benchmarks tests
	$(BIN)/ruff format --check spare evaluators benchmarks tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
