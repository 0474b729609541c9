"""``tm_app.fuzz`` reduced for CI: every service as a real process (the supervisor, a
private namespace, ports 8101-8108 + 820) on the Redis under test; 300 malformed entries into
each of the 13 consumed streams, then schemathesis with 5 examples per operation on every
service. ``make fuzz`` runs the full version (10,000 entries per stream)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.slow
ENTRIES = 300


@pytest.fixture(scope="module")
def mesh(redis_url, tmp_path_factory):
    from tm_app.fuzz import mesh as fuzz_mesh
    from tm_common.testing.redis import delete_namespace

    data = tmp_path_factory.mktemp("fuzz-mesh")
    m = fuzz_mesh.start(redis_url=redis_url, database_url=f"sqlite+aiosqlite:///{data}/fuzz.db",
                        data_dir=data, port_offset=820, log=lambda msg: None)
    try:
        yield m
    finally:
        m.sup.stop()
        delete_namespace(redis_url, m.namespace)


@pytest.mark.timeout(600)
async def test_every_malformed_entry_is_dead_lettered_by_every_group(mesh, redis_url):
    from tm_app.fuzz.dlq import StreamFuzzer
    from tm_app.fuzz.streams import check_alive

    fuzzer = StreamFuzzer(mesh, redis_url, n=ENTRIES, chunk=150, seed=7, stall_s=90,
                          log=lambda msg: None)
    try:
        rep = await fuzzer.run()
    finally:
        await fuzzer.close()
    assert rep.problems == [], "\n".join(rep.problems[:20])
    assert len(rep.injected) >= 13 and set(rep.injected.values()) == {ENTRIES}
    pairs = sum(len(g) for g in rep.groups.values())
    assert rep.total_dead_lettered == ENTRIES * pairs          # each group, each entry, once
    assert set(rep.categories) == {"bad_json", "wrong_types", "huge_values", "unknown_type",
                                   "missing_fields", "wrong_schema_version", "binary_garbage",
                                   "oversized"}
    assert all(v >= 1 for v in rep.valid_handled.values()), rep.valid_handled
    assert check_alive(mesh, "after the stream fuzz") == []


@pytest.mark.timeout(900)
def test_schemathesis_finds_no_server_error_on_any_service(mesh, tmp_path):
    from tm_app.fuzz import mesh as fuzz_mesh
    from tm_app.fuzz import openapi as fuzz_openapi
    from tm_app.fuzz.streams import check_alive

    envs = {n: fuzz_mesh.spec_env(mesh, n) for n in mesh.ports}
    results = fuzz_openapi.fuzz_services(mesh.ports, envs, out_dir=tmp_path, max_examples=5,
                                         seed=7, admin_token=mesh.admin_token,
                                         log=lambda msg: None)
    failed = [f"{r.service}: {r.failures} failures, {r.errors} errors, exit {r.exit_code}: "
              f"{r.details[:3]}" for r in results
              if r.exit_code or r.failures or r.errors]
    failed += [f"{r.service}: {p}" for r in results for p in r.probe_problems]
    assert failed == [], "\n".join(failed)
    assert {r.service.split(" ")[0] for r in results} == set(mesh.ports)
    assert all(r.operations >= 1 and r.cases > 0 for r in results)
    assert sum(r.operations for r in results) >= 40      # 22 sim routes, 5 risk, 3 per service
    assert check_alive(mesh, "after schemathesis") == []


def test_risk_admin_refuses_absurdly_nested_json(mesh):
    """Found by the hostile-body probe: json.loads raised RecursionError (500); now a 400."""
    r = httpx.post(f"http://127.0.0.1:{mesh.ports['risk']}/breaker/trip",
                   content=b"[" * 5_000 + b"]" * 5_000, timeout=30,
                   headers={"Authorization": f"Bearer {mesh.admin_token}",
                            "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
