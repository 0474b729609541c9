from tm_common.service import serve

from tm_executor.app import build
from tm_executor.config import ExecutorSettings

if __name__ == "__main__":
    raise SystemExit(serve(build, ExecutorSettings()))
