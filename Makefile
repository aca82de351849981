# The two commands a newcomer needs: `make run` and `make test`.
.PHONY: run test lint bootstrap clean

bootstrap:
	./scripts/bootstrap

run: bootstrap
	./scripts/run-local

test: bootstrap
	./scripts/test

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

clean:
	rm -rf .venv .run .pytest_cache
