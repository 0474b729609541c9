"""``python -m tm_fake_demo [tm demo options]``: the real ``tm demo`` command (embedded Redis,
SQLite migrated, :func:`tm_app.mesh.run_mesh` with its supervisors, signal handling and state
files) with three things replaced so that it runs in seconds: no model training, no shadow
book, and the mesh's services are ``tm_fake_svc`` processes (ready at once; the fake ingest never
reports ``replay_done``, so the run lasts until it is stopped).

``FAKE_DEMO_SERVICES`` (default 3): how many fake services besides the fake ingest.
"""

from __future__ import annotations

import os
import sys

import tm_app.demo as demo
import tm_app.demo_cli as demo_cli
import tm_app.mesh as mesh
from tm_app.stack.main import app
from tm_app.stack.supervisor import ProcessSpec
from tm_common.testing.redis import free_port


def _fake_specs(cfg, *, redis_url, namespace, data_dir, port_offset):
    n = int(os.environ.get("FAKE_DEMO_SERVICES", "3"))
    specs = []
    for name in [*mesh.PIPELINE[:n], "ingest"]:
        port = free_port()
        specs.append(ProcessSpec(name=name, argv=[sys.executable, "-m", "tm_fake_svc"],
                                 port=port, env={"TM_SERVICE_NAME": name,
                                                 "TM_HTTP_PORT": str(port),
                                                 "TM_REDIS_URL": redis_url}))
    return specs


demo_cli._ensure_models = lambda db_url, fast, **kw: None
demo.shadow_candidate = lambda db_url, choice: None
mesh._specs = _fake_specs

if __name__ == "__main__":
    app(["demo", *sys.argv[1:]], prog_name="tm")
