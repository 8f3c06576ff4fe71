# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install, run the main job on ../shared/data (or $MFR_DATA)
#   make test   - create .venv, install, lint and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OUT ?= runs/demo
# MediaPipe 0.10.21 is the last release that ships its face models in the wheel. Its metadata
# pins numpy<2 and pulls jax and a second OpenCV, none of which its face graphs use, so it is
# installed without dependencies; the ones it needs (absl-py, attrs, flatbuffers, protobuf
# 6.x, which onnx needs too) are in pyproject.toml. The last line proves the stack imports.
MEDIAPIPE := mediapipe==0.10.21

.PHONY: setup demo test lint format bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(MEDIAPIPE)
	$(BIN)/python -c "import numpy, torch, cv2, onnx, mfr.align.mesh as m; m.warm_up()"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/mfr demo --out $(OUT)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
