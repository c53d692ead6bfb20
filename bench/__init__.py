"""Benchmarks of the portal against the local Microsoft 365 stand-in (`make bench`, not part of `make test`)."""
