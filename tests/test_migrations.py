"""The schema comes from migrations outside tests; they must build exactly what the models describe."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from app.extensions import db
from tests.conftest import BACKENDS, config_for, database_for


@pytest.fixture(params=BACKENDS)
def empty_database_app(request, tmp_path_factory):
    with database_for(request.param, tmp_path_factory, prefix="m") as url:
        app = create_app(config_for(url), instance_path=str(tmp_path_factory.mktemp("instance")))
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()


def table_names():
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def schema_differences():
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_upgrade_from_empty_builds_the_models_schema(empty_database_app):
    upgrade()
    assert table_names() == set(db.metadata.tables)
    assert schema_differences() == []


def test_downgrade_and_upgrade_round_trip(empty_database_app):
    upgrade()
    downgrade(revision="base")
    assert table_names() == set()
    upgrade()
    assert schema_differences() == []
