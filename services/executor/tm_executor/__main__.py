"""``python -m tm_executor``: the arming check first (one line naming ``TM_LIVE_TRADING`` and exit
2 when the venue is not allowed, before any network call), then the service."""

import sys

from tm_common.errors import ConfigError
from tm_common.logging import configure_logging
from tm_common.service import serve

from tm_executor.app import build
from tm_executor.config import ExecutorSettings


def main() -> int:
    settings = ExecutorSettings()
    try:
        settings.arming()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    configure_logging(settings)          # before build: its executor.venue line is a log line
    return serve(build, settings)


if __name__ == "__main__":
    raise SystemExit(main())
