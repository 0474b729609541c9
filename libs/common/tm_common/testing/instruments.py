"""A recorded ``/v5/market/instruments-info`` answer for tests where no venue runs (risk reads its
lot filters from ``TM_RISK_INSTRUMENTS_FILE``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tm_common.instruments import DEFAULT_INSTRUMENTS


def recorded_instruments_file(directory: str | Path | None = None) -> Path:
    """A file holding Bybit's answer shape for the shipped instruments; its path."""
    d = Path(directory or tempfile.gettempdir())
    path = d / f"tm-instruments-{os.getpid()}.json"
    path.write_text(json.dumps({"retCode": 0, "retMsg": "OK", "result": {
        "category": "linear", "list": [s.info() for s in DEFAULT_INSTRUMENTS.values()]}}))
    return path
