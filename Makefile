# The two commands a newcomer needs: `make run` and `make test`.
.PHONY: run test bench lint bootstrap clean

bootstrap:
	./scripts/bootstrap

run: bootstrap
	./scripts/run-local

test: bootstrap
	./scripts/test

# End-to-end benchmark (docs/benchmarks.md); options through BENCH_ARGS, e.g.
# make bench BENCH_ARGS=--quick
bench: bootstrap
	.venv/bin/python benchmarks/bench.py $(BENCH_ARGS)

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

clean:
	rm -rf .venv .run .pytest_cache
