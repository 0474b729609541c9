from tm_common.service import serve

from tm_risk.app import build
from tm_risk.config import RiskSettings

if __name__ == "__main__":
    raise SystemExit(serve(build, RiskSettings()))
