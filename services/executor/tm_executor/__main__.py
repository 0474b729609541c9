from tm_common.service import run_service

from tm_executor.app import build_runtime
from tm_executor.config import ExecutorSettings

if __name__ == "__main__":
    raise SystemExit(run_service(build_runtime(ExecutorSettings())))
