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
	@echo "[venv] setting up $(VENV): podd with torch, torchvision, open_clip and jupyter."
	@echo "[venv] The first time this downloads about 1-2 GB and takes a few minutes; later runs reuse it."
	@test -x $(BIN)/python || { echo "[venv] creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "[venv] pip install -c constraints.txt -e '.[dev]' (quiet: no output until it is done) ..."
	@set -o pipefail; $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' \
		2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	@echo "[venv] checking that torch, torchvision, open_clip and podd import ..."
	@$(BIN)/python -c "import torch, torchvision, open_clip, podd"
	@touch $(STAMP)
	@echo "[venv] ready: $(VENV)"

demo: venv
	$(BIN)/python -m podd.demo

test: venv
	PODD_PROFILE=smoke $(BIN)/python -m pytest -q --nbval-lax tests notebooks

# Re-execute every notebook with papermill (-p profile $(PROFILE)); they rewrite paper_figures/.
# Only here: elsewhere (papermill by hand, a notebook in lab) figures go to $PODD_FIGURES_DIR,
# else runs/figures/. Under smoke the executed notebooks are also written back to notebooks/.
# On local data: make figures PROFILE=quick DATASET=npz:PATH LIKE=cifar10 N_VAL=1000 ONLY="table1 table2"
figures: venv
	PODD_PROFILE=$(PROFILE) PODD_FIGURES_DIR=$(CURDIR)/paper_figures \
		$(BIN)/python -m podd.make_figures --profile $(PROFILE) \
		$(if $(DATASET),--dataset $(DATASET)) $(if $(LIKE),--like $(LIKE)) \
		$(if $(N_VAL),--n-val $(N_VAL)) $(if $(ONLY),--only $(ONLY))

lab: venv
	$(BIN)/jupyter lab notebooks/

clean-venv:
	rm -rf $(VENV)
