"""Fixtures for the embedded Redis tests."""

from __future__ import annotations

from tm_common.testing.fixtures import private_tmp_path  # noqa: F401 - replaces tmp_path here
