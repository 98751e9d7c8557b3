# tokmix: `make demo` runs the pipeline on the shipped samples (embedded Ray); `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out/demo

.PHONY: setup demo test lint bench clean

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
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check tokmix tests benchmarks
	$(BIN)/ruff format --check tokmix tests benchmarks
	$(BIN)/mypy tokmix

bench: setup
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) out tokmix-out
