"""Alembic migrations for every table in :mod:`tm_common.db.tables`; run with
:func:`tm_common.db.migrate.migrate` (or ``tm migrate``)."""
