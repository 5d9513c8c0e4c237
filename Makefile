# Two commands for a fresh machine:  `make demo`  and  `make test`.
# Each creates .venv when it is missing, installs what it needs once, then runs.
# A torch that already imports inside .venv is kept; otherwise torch==2.13.0 (the CPU wheel) is
# installed. Re-running a command reinstalls nothing unless pyproject.toml changed.
# More checks (what CI runs after `make test`, see .ci/run):
#   make layers     check the import-linter layers contract (pyproject.toml)
#   make lint       ruff over the whole tree (the rules of pyproject.toml)
#   make docs       build the documentation site in strict mode (site/index.html)
#   make examples   run every tutorial in examples/ (prints how long each took)
#   make browser    open the demo report in headless Chromium: images load, no console errors
#   make chromium   install Debian's chromium when it is missing (root, apt-get)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
TORCH_SPEC ?= torch==2.13.0
OUT ?= demo-report
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: demo test test-all layers lint docs examples browser chromium clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, and only when it does not import already (never force-reinstalled).
$(VENV)/.torch: | $(PY)
	@$(PY) -c "import torch" 2>/dev/null && echo "torch already importable in $(VENV): kept" \
	  || $(PIP) install "$(TORCH_SPEC)"
	@touch $@

$(VENV)/.installed-%: pyproject.toml $(VENV)/.torch
	$(PIP) install -e ".[$(subst +,$(comma),$*)]"
	@touch $@

comma := ,

demo: $(VENV)/.installed-alibi
	$(PY) -m captum_latent demo --out $(OUT) $(DEMO_ARGS)

test: $(VENV)/.installed-alibi+ray+test
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(VENV)/.installed-alibi+ray+test
	$(PY) -m pytest $(PYTEST_ARGS)

# The import-linter contracts of pyproject.toml (docs/architecture.md): layers point downwards.
layers: $(VENV)/.installed-alibi+ray+test
	$(VENV)/bin/lint-imports

# ruff with the rules of pyproject.toml ([tool.ruff]) over the whole tree.
lint: $(VENV)/.installed-lint
	$(VENV)/bin/ruff check .

docs: $(VENV)/.installed-alibi+docs
	$(PY) -m mkdocs build --strict

# The same install as `make test`: nothing is reinstalled between the two.
examples: $(VENV)/.installed-alibi+ray+test
	$(PY) -m pytest -m examples tests/examples -rA $(PYTEST_ARGS)

browser: $(VENV)/.installed-alibi+ray+test
	$(PY) -m pytest -m browser tests/report/test_browser.py -rs $(PYTEST_ARGS)

chromium:
	@command -v chromium >/dev/null 2>&1 && echo "chromium already installed" || { \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium >/dev/null && echo "installed $$(chromium --version 2>/dev/null)"; }

clean-venv:
	rm -rf $(VENV)
