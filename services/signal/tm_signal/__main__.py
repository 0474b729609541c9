from tm_common.service import serve

from tm_signal.app import build
from tm_signal.config import SignalSettings

if __name__ == "__main__":
    raise SystemExit(serve(build, SignalSettings()))
