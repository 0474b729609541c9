from tm_common.service import serve

from tm_portfolio.app import build
from tm_portfolio.config import PortfolioSettings

if __name__ == "__main__":
    raise SystemExit(serve(build, PortfolioSettings()))
