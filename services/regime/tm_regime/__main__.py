from tm_common.service import serve

from tm_regime.app import build
from tm_regime.config import RegimeSettings

if __name__ == "__main__":
    raise SystemExit(serve(build, RegimeSettings()))
