from tm_common.service import run_service

from tm_signal.app import build_runtime
from tm_signal.config import SignalSettings

if __name__ == "__main__":
    raise SystemExit(run_service(build_runtime(SignalSettings())))
