from tm_common.service import serve

from tm_ingest.app import build
from tm_ingest.config import IngestSettings

if __name__ == "__main__":
    raise SystemExit(serve(build, IngestSettings()))
