"""Redis goes away and comes back: /readyz says so, /healthz does not care, the process stays up,
and the consumer recovers (re-creating its group on the empty restarted server)."""

from __future__ import annotations

import time

from tm_common.testing.factories import bar_event

IN, OUT = "example.in", "example.out"


def test_readyz_follows_redis_and_consumer_recovers(private_redis, namespace, service_factory,
                                                    stream_client_for, wait):
    streams = stream_client_for(private_redis.url, namespace)
    svc = service_factory(private_redis.url, namespace)
    streams.publish(IN, [bar_event(i=0, ts_init_ns=time.time_ns())])
    wait(lambda: svc.status()["handled"] == 1, 10, "first event handled")
    ready = svc.get("/readyz")
    assert ready.status_code == 200 and ready.json()["not_ready"] == []

    private_redis.kill()
    r = wait(lambda: (x := svc.get("/readyz")).status_code == 503 and x, 10, "/readyz 503")
    body = r.json()
    assert body["ready"] is False and body["not_ready"] == ["redis"], body
    assert body["checks"]["tasks"] == "ok"          # the consumer task keeps retrying
    for _ in range(5):                                   # while Redis is down, for a while
        assert svc.get("/healthz").status_code == 200
        assert svc.proc.poll() is None
        time.sleep(0.2)
    assert svc.get("/status").status_code == 200         # /status still answers, from memory
    assert svc.status()["lag_error"]                     # and says the poll failed

    private_redis.start()                                # same port, empty (no persistence)
    wait(lambda: svc.get("/readyz").status_code == 200, 15, "/readyz back to 200")
    # The restarted server has no group: the consumer must re-create it and read new events.
    streams.publish(IN, [bar_event(i=1, ts_init_ns=time.time_ns())])
    st = wait(lambda: (s := svc.status())["handled"] == 2 and s, 15, "event after recovery")
    assert st["last_event"]["correlation_id"] == bar_event(i=1).correlation_id
    assert [f["causation_id"] for _, f in streams.entries(OUT)] == [bar_event(i=1).event_id]
    assert svc.proc.poll() is None
    text = svc.get("/metrics").text
    assert 'tm_transport_errors_total{error="TransportError"}' in text
