from tm_common.service import serve

from tm_sizer.app import build
from tm_sizer.config import SizerSettings

if __name__ == "__main__":
    raise SystemExit(serve(build, SizerSettings()))
