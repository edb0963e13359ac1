# faceauth task runner. The README's two commands are `make run` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup run test test-unit test-integration test-e2e test-fuzz test-compose lint format protos translations bench attacks

setup:            ## create/refresh .venv and check that the models load (fast when up to date)
	@bash scripts/setup.sh

run: setup        ## start the whole stack locally and print the URL
	@$(PY) -m localrun

test: setup       ## every test tier
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test-e2e: setup
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

test-fuzz: setup  ## FACEAUTH_FUZZ_EXAMPLES=N sets the number of generated requests (default 10000)
	$(PY) -m pytest -m fuzz $(PYTEST_ARGS)

test-compose: setup  ## build every image and run docker-compose.yml with Podman (tests/compose/README.md; not in `make test`)
	$(PY) -m pytest -m compose $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

protos: setup     ## regenerate common/faceauth from protos/ (never edit generated code by hand)
	@bash scripts/gen_protos.sh

translations: setup  ## refresh auth-web's catalogues from its sources (messages.pot, each language's .po), compile them
	@bash scripts/translations.sh

bench: setup      ## every benchmark against a bench stack of its own (~20 min with the 10-minute memory soak; see bench/README.md)
	@bash bench/run_all.sh

attacks: setup    ## the injected-frame attack suite against a real liveness-service: APCER per attack class, BPCER (bench/results/attacks.md)
	$(PY) -m bench.attacks
