# Two commands for a new user: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: run test lint pytest e2e mutate clean

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

clean:
	rm -rf $(VENV) runs test-artifacts
