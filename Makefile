# The two commands a newcomer needs: `make run` and `make test`.
.PHONY: run test chaos bench lint bootstrap clean

bootstrap:
	./scripts/bootstrap

run: bootstrap
	./scripts/run-local

test: bootstrap
	./scripts/test

# The reliability suite in its full profile (docs/reliability.md); the fault scenarios
# alone take about 11 minutes.
# Options to pytest through CHAOS_ARGS, e.g. make chaos CHAOS_ARGS="-k fault_kill"
chaos: bootstrap
	./scripts/chaos $(CHAOS_ARGS)

# End-to-end benchmark (docs/benchmarks.md); options through BENCH_ARGS, e.g.
# make bench BENCH_ARGS=--quick
bench: bootstrap
	.venv/bin/python benchmarks/bench.py $(BENCH_ARGS)

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

clean:
	rm -rf .venv .run .pytest_cache
