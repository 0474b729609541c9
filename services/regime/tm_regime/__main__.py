from tm_common.service import run_service

from tm_regime.app import build_runtime
from tm_regime.config import RegimeSettings

if __name__ == "__main__":
    raise SystemExit(run_service(build_runtime(RegimeSettings())))
