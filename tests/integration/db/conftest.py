"""The db tests use the databases of ``tests/integration/conftest.py`` (``pg_url``,
``sqlite_url``, ``db_url``) and a private temp dir."""

from __future__ import annotations

from tm_common.testing.fixtures import private_tmp_path  # noqa: F401 - replaces tmp_path here
