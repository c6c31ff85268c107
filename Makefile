# The front door. `make run` sets up and starts everything; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
# The demo's ServiceTitan simulation behaves like the real thing (seed 001): 5 % random failures
# and realistic delays (tests keep both off); its simulated office converts a booking into a job
# 30 s after it arrives and completes and invoices the job 2 minutes later (tests: only when
# asked); and the client-processing endpoints accept a demo key. (The back-sync asks about a
# young routing every minute by default, so the README walkthrough's job completes three to four
# minutes after it was synced.)
DEMO_ENV ?= SERVICETITAN_SIMULATION_FAILURE_RATE=0.05 SERVICETITAN_SIMULATION_DELAYS=true \
	SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS=30 SERVICETITAN_SIMULATOR_COMPLETE_AFTER_SECONDS=120 \
	PROCESSING_API_KEYS=$${PROCESSING_API_KEYS:-demo-processing-key} \
	WEBHOOK_ALLOW_HTTP=true WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install run dev test lint format migrate demo superuser clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(BIN)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	DEMO_BASE_URL=http://127.0.0.1:$(PORT) $(BIN)/python manage.py seed_demo

run: demo
	@echo ""
	@echo "  TradeEngage is starting on http://127.0.0.1:$(PORT)"
	@echo "    API docs     http://127.0.0.1:$(PORT)/docs   (ReDoc: /redoc, schema: /openapi.json)"
	@echo "    Admin        http://127.0.0.1:$(PORT)/admin/ (create a login: make superuser)"
	@echo "    Dashboard    http://127.0.0.1:$(PORT)/admin/dashboard/ (ops figures and charts)"
	@echo "    Health       http://127.0.0.1:$(PORT)/api/v1/health/detailed"
	@echo "    Jobs         http://127.0.0.1:$(PORT)/api/v1/jobs/"
	@echo "    Metrics      http://127.0.0.1:$(PORT)/metrics (Prometheus; web and worker counts added up)"
	@echo "  web + worker + beat run below, each started again if it dies; Ctrl-C stops them all."
	@echo ""
	@rm -rf var/metrics && mkdir -p var/metrics
	WEB_PORT=$(PORT) PROMETHEUS_MULTIPROC_DIR=$(abspath var/metrics) $(DEMO_ENV) $(BIN)/supervisord -c supervisord.conf

dev: run

superuser: migrate
	$(BIN)/python manage.py createsuperuser

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var .pytest_cache .ruff_cache
