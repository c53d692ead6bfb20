"""Durable background jobs: `queue` stores, claims and retries them, `handlers` runs them.

Work is identified by (kind, key), e.g. ("sync_link", "42"). Any process may enqueue;
every process running the scheduler's pool claims and runs jobs, so work spreads over
all instances while the database keeps at most one run per key at a time.
"""
