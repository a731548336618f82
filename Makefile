# The two commands of the README: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-quick test venv bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,emu]'
	@touch $(STAMP)

venv: $(STAMP)

# The main job: every figure of seed 000 in both profiles, the report, and REPRODUCTION.md regenerated from it.
DEMO_DIR := results/paper/demo
demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/qkdbed run experiments/paper.yaml -o $(DEMO_DIR) $(DEMO_FLAGS)
	$(VENV)/bin/qkdbed report $(DEMO_DIR) --reproduction REPRODUCTION.md
	@echo "figures: $(DEMO_DIR)/paper/  report: $(DEMO_DIR)/report.md  table: REPRODUCTION.md"

demo-quick:
	$(MAKE) demo DEMO_FLAGS=--quick

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/sim_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
