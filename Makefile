# tokmix: `make demo` runs the inference on the shipped samples; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out/demo

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/tokmix infer data/tokenizers/demo \
	  --category books=data/samples/books.jsonl.gz \
	  --category legal=data/samples/legal.jsonl.gz \
	  --category python=data/samples/python.jsonl.gz \
	  --category rust=data/samples/rust.jsonl.gz \
	  --category typescript=data/samples/typescript.jsonl.gz \
	  --out $(OUT)
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
