# Two commands for a new user: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: run test lint pytest e2e mutate messages catalogues clean

$(BIN)/activate: requirements.txt
	sh scripts/install-venv.sh $(PYTHON) $(VENV)  # the Dockerfile runs the same script
	touch $(BIN)/activate

$(VENV)/.dev: $(BIN)/activate requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.dev

.venv: $(BIN)/activate

run: $(BIN)/activate
	$(BIN)/streamlit run serve.py --server.port $(PORT)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile

pytest: $(VENV)/.dev
	$(BIN)/python -m pytest -q

test: lint pytest

mutate: $(VENV)/.dev  # by hand, not in CI: about 15 minutes on 2 cores (README.md, "Development")
	$(BIN)/python scripts/mutate.py

# The interface in other languages (README.md, "Languages"): after changing a marked string, `make messages` extracts
# them all into locale/classroom.pot and merges it into each catalogue; translate what is new or fuzzy, then
# `make catalogues` compiles the .mo files the app reads (committed: a fresh clone runs without a build step).
CATALOGUES := cs
BABEL := $(BIN)/pybabel

messages: $(BIN)/activate
	$(BABEL) --quiet extract --mapping-file babel.cfg --no-default-keywords -k _ -k ngettext:1,2 -k N_ --no-location --no-wrap \
		--sort-output --project "Torch Classroom" --copyright-holder "Torch Classroom" -o locale/classroom.pot .
	for lang in $(CATALOGUES); do \
		$(BABEL) update -i locale/classroom.pot -d locale -D classroom -l $$lang --no-wrap || exit 1; \
	done

catalogues: $(BIN)/activate
	$(BABEL) compile -d locale -D classroom --statistics

clean:
	rm -rf $(VENV) runs test-artifacts
