# The two commands a newcomer needs (see README.md), and a few more.
.PHONY: demo test test-all faults bench bootstrap

bootstrap:
	@scripts/bootstrap

# Quickstart: local Kafka, the axis simulator, a gateway for two agencies, one document.
demo: bootstrap
	.venv/bin/edoc-gateway demo

# The test suite CI runs: unit, property, integration (real Kafka broker, simulator over HTTP).
test: bootstrap
	.venv/bin/python -m pytest

# Everything, including the slow fault and soak scenarios.
test-all: bootstrap
	.venv/bin/python -m pytest -m ""

bench: bootstrap
	.venv/bin/python bench/edxml_bench.py

# The fault scenarios at full size; prints the table (docs/faults.md).
faults: bootstrap
	.venv/bin/python -m tests.faults.run
