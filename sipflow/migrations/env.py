"""Alembic environment: the URL comes from the caller (sipflow.db.migrate), never from a file."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import sipflow.accounts
import sipflow.audit
import sipflow.capacity_store
import sipflow.models
import sipflow.runner_hosts  # noqa: F401
from sipflow.db import get_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    with get_engine(url).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
