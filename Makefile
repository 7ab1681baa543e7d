# Martinique Connect — entry points. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MC_DATA_DIR ?= var

.PHONY: run test test-fast bench lint install browser clean messages

# The project and its pinned dependencies installed by uv (seconds, where pip takes one to two
# minutes of the CI's budget), with the system's certificate authorities (UV_NATIVE_TLS: a
# proxy's); by pip if uv cannot be had. Same versions either way: constraints.txt.
UV_VERSION := 0.13.9
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	if $(BIN)/pip install --quiet 'uv==$(UV_VERSION)'; then \
	  UV_NATIVE_TLS=1 $(BIN)/uv pip install --quiet --python $(BIN)/python \
	    -c constraints.txt -e '.[dev]'; \
	else \
	  $(BIN)/pip install --quiet --upgrade pip && \
	  $(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'; \
	fi
	touch $(STAMP)

install: $(STAMP)

## make run: migrations, signing keys, demo data, then the provider (8000), the two demo
## applications (8001 cantine, 8002 stationnement) and the demo FranceConnect
## (localhost:8003, docs/franceconnect.md). Ctrl-C stops everything.
## The provider answers on http://localhost:8000 (not 127.0.0.1, DESIGN's default for
## MC_ISSUER): browsers refuse passkeys (WebAuthn) on an IP address. MC_ISSUER=… make run
## chooses another address.
run: export MC_ISSUER ?= http://localhost:8000
run: $(STAMP)
	$(BIN)/martinique-connect db upgrade
	$(BIN)/martinique-connect demo seed
	$(BIN)/python -m martinique_connect.demo_franceconnect $(MC_DATA_DIR)
	@echo ""
	@echo "  Martinique Connect : $(MC_ISSUER)/.well-known/openid-configuration"
	@echo "  Cantine scolaire   : http://127.0.0.1:8001/"
	@echo "  Stationnement      : http://127.0.0.1:8002/"
	@echo "  Créer un compte    : $(MC_ISSUER)/inscription  (mon compte : /compte/)"
	@echo "  Boîte de démo      : $(MC_ISSUER)/demo/boite  (les courriels envoyés)"
	@echo "  Console            : $(MC_ISSUER)/admin/ (admin@demo.mq, mairie.lamentin@demo.mq)"
	@echo "                       mot de passe, puis le code à 6 chiffres de la commande « code du moment » ci-dessus"
	@echo "  Services mutualisés : $(MC_ISSUER)/admin/services (acheteur.lamentin@demo.mq commande, valideur.ctm@demo.mq approuve ; docs/services.md)"
	@echo "  Clés d'accès       : ouvrez les pages par localhost (les navigateurs les refusent sur 127.0.0.1)"
	@echo ""
	@trap 'kill 0' INT TERM EXIT; \
	  $(BIN)/python -m demo_rp $(MC_DATA_DIR)/demo.json & \
	  MC_ISSUER=http://localhost:8003 MC_PORT=8003 MC_DATA_DIR=$(MC_DATA_DIR)/franceconnect \
	    MC_DATABASE_URL= MC_REDIS_URL= MC_BLOB_URL= MC_SMTP_URL= \
	    $(BIN)/martinique-connect serve & \
	  (set -a; . ./$(MC_DATA_DIR)/franceconnect-demo.env; MC_DEMO=1 exec $(BIN)/martinique-connect serve)

## Debian's Chromium for the browser tests (never a downloaded browser).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	@test -x /usr/sbin/clamd || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clamav-daemon >/dev/null)
	@test -d tests/e2e/node_modules/axe-core || (cd tests/e2e && npm install --silent --no-audit --no-fund)

## make test: the whole suite (embedded backends; PostgreSQL + Redis too when reachable),
## over TEST_WORKERS processes (pytest-xdist; each test file stays on one worker, so the
## session's servers are started once per worker). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -m "not e2e" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy plateforme idp admin_ui martinique_connect demo_rp services_mutualises archivage
	$(BIN)/lint-imports

## make messages: extract the citizen pages' strings (babel.cfg), update the catalogues
## idp/locales/<lang>/LC_MESSAGES/messages.po and compile them (.mo files are not committed:
## the application compiles a .po in memory when its .mo is missing or older).
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k Msg --sort-by-file --no-wrap \
	  --project="Martinique Connect" --version=0.1.0 \
	  --copyright-holder="Collectivité Territoriale de Martinique" -o idp/locales/messages.pot .
	$(BIN)/pybabel update -i idp/locales/messages.pot -d idp/locales --no-wrap --ignore-obsolete
	$(BIN)/pybabel compile -d idp/locales --statistics

bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/archives_ingest.py

## make loadtest: a short headless locust profile (every journey, 6 users, 20 s) against a
## throw-away `serve --workers 2` on 127.0.0.1 (PostgreSQL + Redis when reachable); locust's
## CSV and HTML reports in var/loadtest/. Capacity steps: see docs/capacite.md, e.g.
## make loadtest LOADTEST_ARGS="--journeys first-sign-in,sso,resource-server --users 1,2,4,8"
.PHONY: loadtest
loadtest: $(STAMP)
	$(BIN)/python loadtests/run.py $(LOADTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
