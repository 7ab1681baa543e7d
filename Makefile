# Martinique Connect — entry points. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MC_DATA_DIR ?= var

.PHONY: run test test-fast bench lint install browser clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: migrations, signing keys, demo data, then the provider (8000) and the two demo
## applications (8001 cantine, 8002 stationnement). Ctrl-C stops everything.
run: $(STAMP)
	$(BIN)/martinique-connect db upgrade
	$(BIN)/martinique-connect demo seed
	@echo ""
	@echo "  Martinique Connect : http://127.0.0.1:8000/.well-known/openid-configuration"
	@echo "  Cantine scolaire   : http://127.0.0.1:8001/"
	@echo "  Stationnement      : http://127.0.0.1:8002/"
	@echo "  Créer un compte    : http://127.0.0.1:8000/inscription  (mon compte : /compte/)"
	@echo "  Boîte de démo      : http://127.0.0.1:8000/demo/boite  (les courriels envoyés)"
	@echo "  Console            : http://127.0.0.1:8000/admin/ (admin@demo.mq, mairie.lamentin@demo.mq)"
	@echo "                       mot de passe, puis le code à 6 chiffres de la commande « code du moment » ci-dessus"
	@echo ""
	@trap 'kill 0' INT TERM EXIT; \
	  $(BIN)/python -m demo_rp $(MC_DATA_DIR)/demo.json & \
	  MC_DEMO=1 $(BIN)/martinique-connect serve

## Debian's Chromium for the browser tests (never a downloaded browser).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	@test -d tests/e2e/node_modules/axe-core || (cd tests/e2e && npm install --silent --no-audit --no-fund)

## make test: the whole suite (embedded backends; PostgreSQL + Redis too when reachable).
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -m "not e2e" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy plateforme idp admin_ui martinique_connect demo_rp archivage
	$(BIN)/lint-imports

bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/archives_ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
