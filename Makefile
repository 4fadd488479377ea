# Every target bootstraps .venv from nothing (python3 -m venv + pip), then acts.
# make demo   render a video from a sample image on the embedded sandbox
# make test   lint (ruff), types (mypy strict) and the whole test suite, offline except package
#             installs (installs Debian's chromium for the browser tests); what CI runs
# make test-fast  the inner loop: no browser, no chaos soak, no notebooks (under 2 min)
# make lab    JupyterLab on notebooks/
# make app    the Studio as a stand-alone web app (Voilà) for teaching demos
# make check  ruff + mypy
# make docs   the documentation site into site/ (mkdocs build --strict, offline); make test
#             builds it too (tests/test_docs.py)
# make docs-notebooks  run copies of notebooks/ on the sandbox into docs/notebooks/ (with
#             outputs, committed); make docs renders those without running them
# make bench  wavenb vs the official SDK vs a naive loop on the served sandbox (~33 min on 2
#             cores; BENCH_ARGS=--quick for ~5 min). Not part of make test.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check --only-binary av

DEMO_IMAGE ?= notebooks/assets/animal-chelsea.jpg
DEMO_PROMPT ?= Gentle camera pan to the right, revealing more of the scene
DEMO_OUT ?= out/demo.mp4

.PHONY: demo test test-fast lint lab app check clean browser bench docs docs-notebooks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.sandbox: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[sandbox]'
	touch $@

# pip >= 25.1 reads [dependency-groups] (the dev tools: ruff, mypy).
$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(PIP) 'pip>=25.1'
	$(PIP) -e '.[test]' --group dev
	touch $@

$(VENV)/.lab: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test]' jupyterlab
	touch $@

# The docs build needs only the lean package and the docs group (pip >= 25.1 for --group).
$(VENV)/.docs: pyproject.toml | $(BIN)/python
	$(PIP) 'pip>=25.1'
	$(PIP) -e . --group docs
	touch $@

demo: $(VENV)/.sandbox
	$(BIN)/wavenb generate "$(DEMO_IMAGE)" "$(DEMO_PROMPT)" -o "$(DEMO_OUT)"

# Debian's chromium for the real-browser test; never a browser downloaded by a test tool.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "make test: chromium missing and not root; the browser test will be skipped"; fi; }

lint: $(VENV)/.test
	$(BIN)/ruff check wavenb tests bench
	$(BIN)/mypy

test: lint browser
	$(BIN)/python -m pytest --hypothesis-profile=ci

# Two workers (pytest-xdist): the inner loop is mostly waiting on sockets and subprocesses.
test-fast: $(VENV)/.test
	$(BIN)/python -m pytest -m "not browser and not slow" --hypothesis-profile=ci -q -n 2 --dist worksteal

check: lint

# Material and a plugin print a banner about a future MkDocs 2 on every build: not ours to act on.
DOCS_ENV := NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true

docs: $(VENV)/.docs
	$(DOCS_ENV) $(BIN)/mkdocs build --strict --clean

docs-notebooks: $(VENV)/.test
	$(BIN)/python docs/_scripts/run_notebooks.py

bench: $(VENV)/.sandbox
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# As root (containers, CI images) Jupyter refuses to start without --allow-root.
lab: $(VENV)/.lab
	$(BIN)/jupyter lab notebooks/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

# The Studio alone in a page (no code cells), on http://localhost:8866.
app: $(VENV)/.test
	cd notebooks && ../$(BIN)/voila studio_app.ipynb --Voila.ip=127.0.0.1 --port=8866

clean:
	rm -rf $(VENV) out site .pytest_cache .mypy_cache .ruff_cache bench/.deps bench/.work
