"""The ``tm`` command (:mod:`tm_common.cli.main`) and the local process supervisor.

- :mod:`~tm_common.cli.services`: the service table (name → module, port) as data.
- :mod:`~tm_common.cli.supervisor`: :class:`Supervisor` over :class:`ProcessSpec`s.
- :mod:`~tm_common.cli.stack`: settings, pre-flight checks (Redis, database), state file, stop.
- :mod:`~tm_common.cli.status`: ``/status`` of each service as a table.
"""
