# The two set-up commands of the README: `make run` (the main job) and `make test` (the suite).
# Both create .venv and install wmjax with its dev extras on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STEPS  ?= 2000

.PHONY: run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# PETS on DM Control cartpole swing-up (MuJoCo Playground on MJX), CPU JAX: a progress bar,
# then runs/pets-dmc-CartpoleSwingup-<time>/ with config.json, metrics.jsonl, curve.png, checkpoints/.
run: $(BIN)/.installed
	JAX_PLATFORMS=cpu $(BIN)/wmjax train pets --env dmc/CartpoleSwingup --steps $(STEPS)

# Two pytest workers (one test file each at a time): compilation is single-threaded, so on 2
# cores this roughly halves the suite (192 tests: 11.8 min warm-cache against 28.6 min in one
# process on a busier CPU). 430 tests took 26.6 min here with an empty compilation cache, before
# the 8x8 pixel learning test (about 140 s) joined them; CI ran that suite in 1,619 s.
test: $(BIN)/.installed
	$(BIN)/ruff check .
	JAX_PLATFORMS=cpu $(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/pets_plan.py --out benchmarks/results/pets_plan-cpu.json

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache .ruff_cache
