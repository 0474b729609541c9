"""Runtime image size: the runtime dependency set (``requirements/runtime.txt``, hashes checked)
and the project installed into a fresh venv, as the Docker image's runtime stage does; the size
of its site-packages and of the whole venv. Target: the venv <= 600 MB (issue 17); exit 1 above
it with ``--check`` (a CI gate). Also the heaviest installed distributions, to say what to drop.

Usage: ``python bench/bench_image.py [--check] [--limit-mb 600] [--json PATH]``. Needs the
package index pip is configured with (it downloads what pip's cache lacks).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _benchlib as lib

ROOT = Path(__file__).resolve().parents[1]


def du_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def run(lock: Path, keep: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        venv = keep or Path(tmp) / "venv"
        t = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
               "--disable-pip-version-check"]
        subprocess.run([*pip, "--require-hashes", "-r", str(lock)], check=True)
        subprocess.run([*pip, "--no-build-isolation", str(ROOT)], check=True,
                       capture_output=True)
        secs = time.monotonic() - t
        site = next((venv / "lib").glob("python3*/site-packages"))
        per = {}
        for d in site.iterdir():
            if d.is_dir() and not d.name.endswith((".dist-info", "__pycache__")):
                per[d.name] = du_bytes(d)
        top = dict(sorted(per.items(), key=lambda kv: -kv[1])[:12])
        # every service's app imports in it (a runtime set missing a module fails here)
        apps = [f"tm_{s}.app" for s in ("ingest", "regime", "signal", "sizer", "risk",
                                         "executor", "portfolio", "exchange_sim")]
        code = ("import importlib, resource, sys\n"
                f"for m in {apps!r}: importlib.import_module(m)\n"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        p = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                           text=True, check=False, cwd="/")
        if p.returncode != 0:
            raise SystemExit(f"error: a service does not import in the runtime venv: "
                             f"{p.stderr.strip().splitlines()[-1:]}")
        sig = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import resource, tm_signal.app, tm_signal.domain.model\n"
                              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                             capture_output=True, text=True, check=True, cwd="/")
        return {"lock": str(lock.relative_to(ROOT)), "install_s": secs,
                "venv_mb": du_bytes(venv) / 1e6, "site_packages_mb": du_bytes(site) / 1e6,
                "top_mb": {k: round(v / 1e6, 1) for k, v in top.items()},
                "all_services_import_peak_rss_mib": int(p.stdout.split()[-1]) / 1024,
                "signal_import_peak_rss_mib": int(sig.stdout.split()[-1]) / 1024,
                "machine": lib.machine()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lock", default=str(ROOT / "requirements" / "runtime.txt"))
    ap.add_argument("--limit-mb", type=float, default=600.0)
    ap.add_argument("--check", action="store_true", help="exit 1 when the venv is over the limit")
    ap.add_argument("--keep", help="build the venv here and keep it (default: a temporary one)")
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args()
    res = run(Path(args.lock).resolve(), Path(args.keep).resolve() if args.keep else None)
    res["limit_mb"] = args.limit_mb
    lib.report(args.json, res,
               f"runtime venv ({res['lock']}, fresh): {res['venv_mb']:.0f} MB "
               f"(site-packages {res['site_packages_mb']:.0f} MB; target <= {args.limit_mb:.0f} MB), "
               f"installed in {res['install_s']:.0f} s",
               f"  heaviest (MB): {res['top_mb']}",
               f"  every service's app imports in it; peak RSS of that import: all services "
               f"{res['all_services_import_peak_rss_mib']:.0f} MiB, the signal service alone "
               f"{res['signal_import_peak_rss_mib']:.0f} MiB")
    if args.check and res["venv_mb"] > args.limit_mb:
        print(f"error: the runtime venv is {res['venv_mb']:.0f} MB, over {args.limit_mb:.0f} MB")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
