"""``tm demo``'s start-up waits for every service's ``/readyz`` (``tm_app.mesh._wait_ready``): a
service whose only missing check is a model the gates refused counts as ready and is said to
trade flat; one whose registry has not answered yet is waited for (it may have a model)."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

from tm_app.mesh import _wait_ready
from tm_common.models.cache import NOT_CHECKED_YET
from tm_common.testing.stub_http import StubHTTP
from tm_common.testing.wait import wait_for


def readyz(model: str) -> str:
    ready = model == "ok"
    return json.dumps({"not_ready": [] if ready else ["model"],
                       "checks": {"redis": "ok", "model": model}})


def test_a_registry_not_checked_yet_is_waited_for_then_the_model_counts():
    regime, signal = StubHTTP(), StubHTTP()
    for svc in (regime, signal):
        svc.set("/readyz", readyz(f"error: NotReady: {NOT_CHECKED_YET}"), status=503)
    procs = {n: SimpleNamespace(spec=SimpleNamespace(port=int(s.url.rsplit(":", 1)[1])))
             for n, s in (("regime", regime), ("signal", signal))}
    lines: list[str] = []
    waiting = threading.Thread(target=_wait_ready, args=(
        SimpleNamespace(procs=procs, poll=lambda: None), ("regime", "signal"), 20, lines.append))
    try:
        waiting.start()
        wait_for(lambda: len(regime.requests) >= 2 and len(signal.requests) >= 2,
                 what="two polls of each service")
        assert waiting.is_alive() and lines == []      # not checked yet: still waiting
        regime.set("/readyz", readyz("ok"))
        signal.set("/readyz", readyz("error: NotReady: no production signal model"), status=503)
        waiting.join(timeout=10)
        assert not waiting.is_alive()
    finally:
        regime.close()
        signal.close()
    # regime got its model: nothing said; signal has none: said once, with the settled reason
    assert len(lines) == 1 and lines[0].startswith("signal: running without a production model")
    assert "no production signal model" in lines[0] and NOT_CHECKED_YET not in lines[0]
