# One-command set-up. TORCH is the torch requirement: the default `torch` is what a user with a GPU
# wants; CI passes TORCH=torch==2.13.0 to take the CPU wheel already on disk (pitfalls.md).
PY      ?= python3
TORCH   ?= torch
JOBS    ?= auto
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

# the whole suite on JOBS workers (pytest-xdist; the preset claim tests share each trained run through a
# file-locked folder, so a run is trained once whichever worker needs it first)
test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -n $(JOBS) --durations=25

test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m "not slow" -q -n $(JOBS)

lint: $(STAMP)
	$(BIN)/lint-imports --no-cache

wheel-check:
	bash .ci/wheel-check "$(TORCH)"

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m benchmarks

gallery: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python docs/gallery.py

# the long soak: 20 000 steps drawn live, then the monkey (random GUI actions, each run in a child process
# with faulthandler on) at 1 500 actions x 4 seeds on each engine; each exits 1 on a missed target
soak: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m benchmarks.soak
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m benchmarks.monkey --seeds 0,1,2,3 --actions 1500 --engines process,thread --jobs 2

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
