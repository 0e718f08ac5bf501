# `make demo` and `make test` set up everything on a fresh machine (a .venv from PyPI,
# versions pinned by constraints.txt); nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: verifier-page demo test bench bench-tools wrk bench-quick capacity bench-stream bench-merkle bench-ingest bench-anchor bench-api bench-monitor bench-witness bench-tiles bench-push bench-smoke soak venv clean contract contract-check npm-tools

venv: $(STAMP)

$(STAMP): pyproject.toml verifier/pyproject.toml client/pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ./verifier -e ./client -e '.[dev,bench,kurrentdb,stream]'
	touch $(STAMP)

# npm tools pinned by anchor/contracts/package-lock.json: solc-js (the contract's build) and
# anvil/cast (the JSON-RPC chain the anchoring tests start on 127.0.0.1).
NPM_STAMP := anchor/contracts/node_modules/.installed

npm-tools: $(NPM_STAMP)

$(NPM_STAMP): anchor/contracts/package.json anchor/contracts/package-lock.json
	cd anchor/contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

# The JS verifier (verifier/js): sm-crypto-v2, hash-wasm, @noble/hashes and esbuild, pinned by
# its package-lock.json; the tests run it under Node and build-check the committed page.
VERIFIER_JS_STAMP := verifier/js/node_modules/.installed

$(VERIFIER_JS_STAMP): verifier/js/package.json verifier/js/package-lock.json
	cd verifier/js && npm ci --no-audit --no-fund --loglevel=error
	touch $(VERIFIER_JS_STAMP)

# Rebuild the verifier page (verifier/js/dist/, committed) from its sources; reproducible.
verifier-page: $(VERIFIER_JS_STAMP)
	cd verifier/js && node build.mjs

# Rebuild the anchor contract's artifact (committed) with the pinned solc-js; reproducible.
contract: $(NPM_STAMP)
	cd anchor/contracts && node build.mjs

contract-check: $(NPM_STAMP)
	cd anchor/contracts && node build.mjs --check

# The demo anchors on a local anvil chain (npm, pinned like the contract's compiler).
demo: $(STAMP) $(NPM_STAMP)
	$(VENV)/bin/evledger demo

# pytest exits 5 when it collected no tests: that means the suite was not found, so fail loudly.
# The quick benchmark suite's smoke run (about 3.5 minutes: every bench module once) is left to
# `make bench-smoke`, to keep `make test` under its 15 minutes.
test: $(STAMP) $(NPM_STAMP) $(VERIFIER_JS_STAMP)
	@$(PY) -m pytest -q -m "not bench_smoke" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5); the suite is missing"; exit 1; fi; \
	exit $$rc

# The HTTP benchmark's load generator that is not Python: autocannon, pinned by bench/load/package-lock.json.
LOAD_STAMP := bench/load/node_modules/.installed

bench-tools: $(LOAD_STAMP) wrk

# wrk (Debian's): the lightest HTTP load generator, preferred by the tiles bench; as root where apt-get is
# (as .ci/run installs packages), else autocannon stands in.
wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)) \
		|| echo "bench-tools: wrk not installed (apt-get install wrk); autocannon stands in"; }

# Best effort: without it (no registry at hand) the API bench measures with its Python drivers only.
$(LOAD_STAMP): bench/load/package.json bench/load/package-lock.json
	cd bench/load && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed \
		|| echo "bench-tools: autocannon not installed; the API bench uses its Python drivers only"

# Every scenario into one report: bench/results/<UTC stamp>/ (report.md, report.json, plots, raw JSON).
bench: $(STAMP) $(NPM_STAMP) $(LOAD_STAMP) wrk
	$(PY) -m bench.suite $(BENCH_ARGS)

bench-quick: $(STAMP) $(NPM_STAMP) $(LOAD_STAMP) wrk
	$(PY) -m bench.suite --quick $(BENCH_ARGS)

# The quick suite run once and its report checked (tests/test_bench_suite.py, marker bench_smoke).
bench-smoke: $(STAMP) $(NPM_STAMP) $(LOAD_STAMP) wrk
	$(PY) -m pytest -q -m bench_smoke tests/test_bench_suite.py

# e.g. make capacity CAPACITY_ARGS="--sustained 20000 --peak 60000 --record-bytes 400 --retention-years 10 --proof-rps 50"
capacity: $(STAMP)
	$(PY) -m bench.capacity $(CAPACITY_ARGS)

bench-merkle: $(STAMP)
	$(PY) -m bench.merkle_bench

bench-ingest: $(STAMP)
	$(PY) -m bench.ingest_bench

bench-anchor: $(STAMP) $(NPM_STAMP)
	$(PY) -m bench.anchor_bench

bench-stream: $(STAMP)
	$(PY) -m bench.stream_bench

bench-monitor: $(STAMP) $(NPM_STAMP)
	$(PY) -m bench.monitor_bench

# One local witness: what cosigning adds to record -> checkpoint, next to the same load without witnesses.
bench-witness: $(STAMP)
	$(PY) -m bench.witness_bench

# Static tiles: ingest with publication next to the same load without; proof bundles from nginx (Debian's,
# installed by .ci/run) serving the tiles next to the API's proof route, both driven by wrk (else autocannon); bytes
# per record.
bench-tiles: $(STAMP) $(LOAD_STAMP) wrk
	$(PY) -m bench.tiles_bench

bench-api: $(STAMP) $(LOAD_STAMP)
	$(PY) -m bench.api_bench

# `evledger push` of 1,000,000 records next to the server's batch ingest rate driven by autocannon, same run.
bench-push: $(STAMP) $(LOAD_STAMP)
	$(PY) -m bench.push_bench

# The crash-safety test with many more SIGKILLs than `make test` runs (EVLEDGER_CRASH_TRIALS).
SOAK_TRIALS ?= 200
soak: $(STAMP)
	EVLEDGER_CRASH_TRIALS=$(SOAK_TRIALS) EVLEDGER_CRASH_SEED=$$(date +%s) $(PY) -m pytest -q tests/test_crash.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis verifier/build verifier/*.egg-info verifier/js/node_modules
