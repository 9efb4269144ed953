"""Alembic environment: migrations run on the connection handed over by connector.store.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from connector.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic -x url=... upgrade head` from a shell
    url = context.get_x_argument(as_dictionary=True)["url"]
    with create_engine(url).begin() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata)
    context.run_migrations()
