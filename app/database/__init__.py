"""Database plumbing under every model: column types that store UTC and encrypted secrets,
SQLite's tuning for several writers, commits that skip the disk flush, and one-statement
inserts of a page of rows."""
