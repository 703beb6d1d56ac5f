# Convenience targets; ./dev is the one entry point.
.PHONY: run test bench
run:
	./dev run
test:
	./dev test
bench:
	./dev bench
