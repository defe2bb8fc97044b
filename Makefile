# Two commands do everything on a fresh machine:
#   make demo   set up (virtual environment, CPU torch), index the demo FAQ, answer a question
#   make test   set up if needed, then lint, type-check and run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch. Where pip is set up to find it locally (as on our machines)
# this is a plain pin; elsewhere run e.g.
#   make demo TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0
# pytest-xdist workers: one per core of our 2-core machines. --dist loadfile keeps a
# test file on one worker, so its module fixtures (a server, local Ray, MiniLM's
# vectors of the glosses) are made once; --no-loadscope-reorder hands the files out in
# the order tests/conftest.py gives them (the costliest first) instead of by their
# number of tests. (xdist 3.8's loadgroup does not group under pytest 9.2.)
WORKERS ?= 2
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench bench-serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev,eval,serve,finetune,ray]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/semsearch index examples/faq.csv -o indexes/demo
	$(BIN)/semsearch query indexes/demo "how can I get my notes out as PDF?" -k 3

lint: setup
	$(BIN)/ruff check semsearch tests bench
	$(BIN)/ruff format --check semsearch tests bench
	$(BIN)/mypy semsearch

# ruff first (under a second); mypy runs inside the suite (tests/test_typing.py), on one
# worker while the other runs tests: before them it held up the first test ~10 s.
# PYTHONDONTWRITEBYTECODE= : the tests start ~100 Python processes (CLI runs, Ray
# workers, servers); where the environment turns Python's bytecode cache off (ours
# does), each would compile semsearch again, and pytest its rewritten test modules.
test: setup
	$(BIN)/ruff check semsearch tests bench
	$(BIN)/ruff format --check semsearch tests bench
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -rs -n $(WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

# Every bench script at full size (see the README's Development section for how long);
# scripts that print their report are written to the bench/results/ file they document.
# After demo: warm.py times questions through the demo index.
bench: SHELL := /bin/bash
bench: .SHELLFLAGS := -o pipefail -c
bench: demo
	$(BIN)/python bench/encode.py | tee bench/results/encode.txt
	$(BIN)/python bench/search.py | tee bench/results/search.txt
	$(BIN)/python bench/cold.py
	$(BIN)/python bench/eval.py
	$(BIN)/python bench/fusion.py | tee bench/results/fusion.txt
	$(BIN)/python bench/no_answer.py | tee bench/results/no_answer.txt
	$(BIN)/python bench/finetune.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/scale_ivfpq.py
	$(BIN)/python bench/serve_load.py
	$(BIN)/python bench/warm.py indexes/demo
	$(BIN)/python bench/adaptive.py
	$(BIN)/python bench/filters.py

bench-serve: setup
	$(BIN)/python bench/serve_load.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
