"""The chart gives every service the signing keys of the streams it produces or verifies
(tm_common.bus.signing.KEY_HOLDERS), from one Secret, and no other service any key: the keys
the Python settings read, no more (tests/unit/common/test_signing.py checks the settings side)."""

from __future__ import annotations

import pytest
from tm_common.bus.signing import KEY_HOLDERS, env_var

from .test_helm import CHART, VALUES, docs, pod_spec, render, values_of

HOLDER = {"trainer-rl": "trainer", "exchange-sim": "exchange_sim"}


def signing_env(objs: list[dict]) -> dict[str, tuple[str, str]]:
    (container,) = pod_spec(objs)["containers"]
    return {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in container.get("env", []) if "_SIGNING_KEY_" in e["name"]}


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_each_service_gets_exactly_its_keys_from_the_signing_secret(deploy_tools, sh, values):
    name = values_of(values)["service"]["name"]
    holder = HOLDER.get(name, name)
    expected = {env_var(holder, stream): ("trade-matrix-signing", stream)
                for stream, holders in KEY_HOLDERS.items() if holder in holders}
    assert signing_env(docs(render(deploy_tools, sh, values))) == expected


def test_a_key_of_another_name_or_stream_does_not_render(deploy_tools, sh):
    bad = sh([deploy_tools.helm, "template", "x", str(CHART), "-f", str(VALUES[0]),
              "--set", "signing.keys.TM_SIGNAL_SIGNING_KEY_RISK_ORDER=md.bar"])
    assert bad.returncode != 0 and "signing" in bad.stderr
