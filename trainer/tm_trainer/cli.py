"""What the trainer's commands share: the console, :func:`fail`, :func:`parse_time_ms`, the
settings, the model registry and the ``model.promoted`` publisher, and :func:`run_one_line`.

The commands: ``train_app`` (``tm train``, :mod:`tm_trainer.train_cli`) and ``models_app``
(``tm models list|promote|rollback``, :mod:`tm_trainer.models_cli`). The main ``tm`` CLI mounts
them (``app.add_typer(train_app, name="train")``, ``app.add_typer(models_app, name="models")``);
``python -m tm_trainer`` runs ``train_app``.
Settings are ``TM_*`` variables (:class:`tm_trainer.settings.TrainerSettings`: database URL, Redis
URL, namespace). Expected failures print one ``error:`` line and exit 2 (bad arguments) or 1
(missing data, database or registry errors); no tracebacks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from tm_common.errors import TradeMatrixError
from tm_common.models.bundle import BundleError
from tm_common.models.registry import ModelRegistry, RegistryError

from tm_trainer.data import DataError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

console = Console()


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_time_ms(text: str) -> int:
    """``YYYY-MM-DD`` (UTC midnight) or integer ms since the epoch."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    try:
        d = dt.datetime.strptime(t, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError as e:
        raise typer.BadParameter(f"{text!r} is not YYYY-MM-DD or epoch ms") from e
    return int(d.timestamp() * 1000)


def _settings():
    from pydantic import ValidationError
    from tm_common.settings import settings_error

    from tm_trainer.settings import TrainerSettings
    try:
        return TrainerSettings()
    except ValidationError as e:
        fail(f"bad configuration: {settings_error(TrainerSettings, e)}", 2)


async def _registry(settings) -> tuple[ModelRegistry, AsyncEngine]:
    from tm_common.db import make_engine, resolve_database_url
    from tm_common.db.migrate import migrate_async

    url = resolve_database_url(settings)
    await migrate_async(url)
    engine = make_engine(url)
    return ModelRegistry(engine), engine


def _publisher(settings, enabled: bool):
    if not enabled:
        return None
    from tm_trainer.registry_ops import publish_redis
    return lambda ev: publish_redis(settings, ev)


def run_one_line(coro):
    """``asyncio.run(coro)``; an expected failure is one ``error:`` line and exit status 1."""
    try:
        return asyncio.run(coro)
    except (DataError, RegistryError, BundleError, TradeMatrixError) as e:
        fail(str(e))
    except (OSError, ConnectionError) as e:
        fail(f"cannot reach the database or Redis: {e}")
    except Exception as e:  # noqa: BLE001 - any other failure: one line, not a traceback
        first = (str(e).splitlines() or [""])[0]
        if type(e).__module__.startswith(("sqlalchemy", "asyncpg", "sqlite3", "alembic")):
            fail(f"database error: {type(e).__name__}: {first}")
        fail(f"{type(e).__name__}: {first}")
