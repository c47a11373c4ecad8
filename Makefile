SHELL := /bin/bash
# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROFILE ?= smoke

.PHONY: venv demo test test-fast figures lab clean-venv

venv: $(STAMP)

# The exact torch/torchvision pair comes from constraints.txt (see the comment there).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' \
		2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	$(BIN)/python -c "import torch, torchvision, open_clip, podd"
	touch $(STAMP)

demo: venv
	$(BIN)/python -m podd.demo

test: venv
	PODD_PROFILE=smoke $(BIN)/python -m pytest -q --nbval-lax tests notebooks

# Re-execute every notebook with papermill (-p profile $(PROFILE)); they rewrite paper_figures/.
# Under smoke the executed notebooks are also written back to notebooks/ (the committed state).
# On local data: make figures PROFILE=quick DATASET=npz:PATH LIKE=cifar10 N_VAL=1000 ONLY="table1 table2"
figures: venv
	PODD_PROFILE=$(PROFILE) $(BIN)/python -m podd.figures_build --profile $(PROFILE) \
		$(if $(DATASET),--dataset $(DATASET)) $(if $(LIKE),--like $(LIKE)) \
		$(if $(N_VAL),--n-val $(N_VAL)) $(if $(ONLY),--only $(ONLY))

lab: venv
	$(BIN)/jupyter lab notebooks/

clean-venv:
	rm -rf $(VENV)
