from tm_common.service import run_service

from tm_ingest.app import build_runtime
from tm_ingest.config import IngestSettings

if __name__ == "__main__":
    raise SystemExit(run_service(build_runtime(IngestSettings())))
