from tm_common.service import run_service

from tm_portfolio.app import build_runtime
from tm_portfolio.config import PortfolioSettings

if __name__ == "__main__":
    raise SystemExit(run_service(build_runtime(PortfolioSettings())))
