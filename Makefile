# One-command set-up. TORCH is the torch requirement: the default `torch` is what a user with a GPU
# wants; CI passes TORCH=torch==2.13.0 to take the CPU wheel already on disk (pitfalls.md).
PY      ?= python3
TORCH   ?= torch
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test test-fast lint wheel-check bench gallery soak snr-doc clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python main.py

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m "not slow" -q

lint: $(STAMP)
	$(BIN)/lint-imports --no-cache

wheel-check:
	bash .ci/wheel-check "$(TORCH)"

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m benchmarks

gallery: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python docs/gallery.py

soak: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m benchmarks.soak

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
