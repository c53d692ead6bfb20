"""A private PostgreSQL schema per test session, so runs never see each other's tables."""

import contextlib
import os
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config import normalise_database_url


def postgres_base_url():
    url = os.environ.get("TEST_DATABASE_URL")
    return normalise_database_url(url) if url else None


@contextlib.contextmanager
def temporary_schema(base_url, prefix="t"):
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
