"""``tm shadow``: a shadow book in the foreground, its options checked before it starts.
Errors are one line and a non-zero exit (:func:`tm_app.cli.fail`)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from tm_app.cli import fail


def shadow_cmd(candidate: Annotated[str, typer.Option(
                   help="Signal version to shadow, 'awaiting-evidence', 'newest-refused' or "
                        "'auto' (the first, else the second).")] = "auto",
               mode: Annotated[str | None, typer.Option(
                   help="paper or live (the evidence it gives; default TM_MODE).")] = None,
               port: Annotated[int | None, typer.Option(help="HTTP port (default 8109).")] = None
               ) -> None:
    """Run a shadow book in the foreground (Ctrl-C stops it): the candidate trades production's
    market events (TM_NAMESPACE) on its own paper account, under <namespace>shadow:<candidate>:,
    and its record is written to the registry for `tm models promote`."""
    from tm_app.shadow.__main__ import main
    from tm_app.shadow.config import ShadowSettings

    if mode is not None and mode not in ("paper", "live", "replay"):
        fail(f"--mode must be paper, live or replay, got {mode!r}", 2)
    os.environ["TM_SHADOW_CANDIDATE"] = candidate
    if mode is not None:
        os.environ["TM_MODE"] = mode
    if port is not None:
        os.environ["TM_HTTP_PORT"] = str(port)
    from pydantic import ValidationError
    from tm_common.settings import settings_error
    try:
        ShadowSettings().namespace_for(candidate)
    except ValidationError as e:
        fail(f"bad shadow configuration: {settings_error(ShadowSettings, e)}", 2)
    except ValueError as e:
        fail(f"bad shadow configuration: {e}", 2)
    raise typer.Exit(main())
