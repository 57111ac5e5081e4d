# minivae: `make demo` trains a VAE on the embedded digits; `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Editing the C sources re-runs the install, which rebuilds the extension.
$(STAMP): $(BIN)/python setup.py pyproject.toml csrc/kernels.c csrc/kernels.h minivae/kernels/_build_c.py
	$(BIN)/python -m pip install --quiet -e ".[demo,test]"
	@# pip hides the build's own warning: say here which kernels loaded (a C build that
	@# failed shows as a RuntimeWarning naming the reason)
	$(BIN)/python -c "from minivae import kernels; print('minivae kernels:', *kernels.available_backends())"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python demos/vae_digits.py --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# e.g. make bench BENCH_ARGS="--data-root ../shared/data/mnist --seeds 0 1 2"
BENCH_ARGS ?= --dataset mnist --epochs 10

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/vae_vs_torch.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff
	$(BIN)/ruff check minivae tests demos bench

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache .hypothesis
	rm -f minivae/kernels/_ckernels*.so
