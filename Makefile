# tokmix: `make demo` runs the pipeline on the shipped samples (embedded Ray); `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out/demo

.PHONY: setup demo test lint bench bench-count clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,gpu]"
	touch $@

demo: setup
	$(BIN)/tokmix run data/demo.yaml --out $(OUT)
	$(BIN)/tokmix report $(OUT)
	@echo "truth (data/tokenizers/demo/truth.json):"; cat data/tokenizers/demo/truth.json

test: setup
	PYTHONFAULTHANDLER=1 $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check tokmix tests benchmarks
	$(BIN)/ruff format --check tokmix tests benchmarks
	$(BIN)/mypy tokmix

bench: setup
	$(BIN)/python -m benchmarks.run

# Counting in full (issue #13): all families, Ray per core, memory per count task up to 2 GB
# of input (written under /tmp and deleted), reading libraries. Results: benchmarks/results/counting.md
bench-count: setup
	$(BIN)/python -m benchmarks.counting
	$(BIN)/python -m benchmarks.ray_count
	$(BIN)/python -m benchmarks.count_memory --sizes 100,500,2000
	$(BIN)/python -m benchmarks.reading

clean:
	rm -rf $(VENV) out tokmix-out
