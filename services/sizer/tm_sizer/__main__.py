"""``python -m tm_sizer``: serve the sizer until SIGTERM/SIGINT."""

from tm_common.service import run_service

from tm_sizer.app import build_runtime
from tm_sizer.config import SizerSettings

if __name__ == "__main__":
    raise SystemExit(run_service(build_runtime(SizerSettings())))
