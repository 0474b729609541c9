"""The ``tm`` command (:mod:`tm_app.stack.main`) and the local process supervisor.

- :mod:`~tm_app.stack.services`: the service table (name → module, port) as data.
- :mod:`~tm_app.stack.supervisor`: :class:`Supervisor` over :class:`ProcessSpec`s.
- :mod:`~tm_app.stack.stack`: settings, pre-flight checks (Redis, database), state file, stop.
- :mod:`~tm_app.stack.status`: ``/status`` of each service as a table.
"""
