"""Benchmark and soak harness (not part of `make test`): `make bench`, `make soak`."""
