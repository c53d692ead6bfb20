"""Sending a page's worth of values to the database in one statement.

On PostgreSQL a page's rows travel as one JSON document that `json_to_recordset` turns
back into rows: the statement text stays the same however many rows there are, so it is
parsed and planned once, and the driver converts one value instead of one per cell.
Elsewhere an executemany does the same work.
"""

from datetime import UTC, datetime

from sqlalchemy import JSON, bindparam, column, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db


def on_postgresql():
    return db.session.get_bind().dialect.name == "postgresql"


def json_rows(name, columns):
    """A relation of rows given as the JSON parameter `name`; `columns` are (name, SQL type) pairs."""
    rows = func.json_to_recordset(bindparam(name, type_=JSON))
    return rows.table_valued(*(column(key, type_) for key, type_ in columns)).render_derived(name=name, with_types=True)


def json_values(rows):
    """`rows` (dicts) ready for `json_rows`: times as the columns store them, naive UTC."""
    # Every cell of every page passes here, so the test stays inline rather than a call per cell.
    return [
        {key: _utc_text(value) if isinstance(value, datetime) else value for key, value in row.items()} for row in rows
    ]


def _utc_text(moment):
    if moment.tzinfo is None:
        raise ValueError("naive datetime given for a UTC column; attach a time zone first")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()


def insert_rows(table, rows, *, returning=(), skip_conflicts=False):
    """Insert `rows` (dicts with the same keys) into `table`; return the `returning` values per row.

    `skip_conflicts` leaves out rows whose key is there already.
    """
    postgresql = on_postgresql()
    if skip_conflicts:
        # The dialects' own INSERT, which alone knows ON CONFLICT, is compiled anew each time.
        statement = (pg_insert if postgresql else sqlite_insert)(table).on_conflict_do_nothing()
    else:
        statement = insert(table)
    if postgresql:
        names = list(rows[0])
        new = json_rows("new", [(name, table.c[name].type) for name in names])
        statement = statement.from_select(names, select(*(new.c[name] for name in names)))
        parameters = {"new": json_values(rows)}
    else:
        parameters = rows
    if returning:
        return db.session.execute(statement.returning(*returning), parameters).all()
    db.session.execute(statement, parameters)
    return []
