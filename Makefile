# Two commands do all set-up on a fresh machine:
#   make run    venv + install + run the pipeline on sample_data/ into out/
#   make test   venv + install + the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
OUT    ?= out

.PHONY: run test install clean sample

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/fraudwatch run --input sample_data --output $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

sample: $(STAMP)
	$(BIN)/fraudwatch synth --persons 3000 --months 12 --seed 20241 --messy --format csv --out sample_data

# out/ is kept: out/warehouse.duckdb holds the auditors' outcomes (处置结果). Delete it by hand.
clean:
	rm -rf build *.egg-info
