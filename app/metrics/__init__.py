"""Prometheus metrics: counters the code increments (`instruments`), gauges read from the
database at scrape time (`collector`) and the protected `GET /metrics` endpoint (`routes`)."""
