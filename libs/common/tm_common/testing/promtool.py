"""``promtool check metrics`` on an exposition, for the tests that hold a service's /metrics
text: a metrics test must run it, so a missing promtool fails the test instead of skipping."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def assert_promtool_clean(text: str | bytes, timeout_s: float = 30) -> None:
    """Fail unless ``promtool check metrics`` accepts ``text`` with no problem and no warning
    (exit 0, nothing on stdout or stderr); fail too when promtool is not installed."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run tools/install_promtool.sh")
    data = text.encode() if isinstance(text, str) else text
    r = subprocess.run([promtool, "check", "metrics"], input=data, capture_output=True,
                       check=False, timeout=timeout_s)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr
