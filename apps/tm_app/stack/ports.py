"""Port check before anything is spawned: every port a run's services will listen on must be
free, else one line names the port, its service and the process holding it.

A service that finds its port taken exits at start-up (uvicorn: ``[Errno 98] address already in
use``) and the supervisor would restart it forever; checking first turns that loop into one
error line. The owner is found with psutil (``/proc/net/tcp`` and ``/proc/<pid>/fd`` on Linux):
another user's process shows as ``a process of another user`` (its sockets are not readable).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psutil
from tm_common.errors import TradeMatrixError


class PortsInUse(TradeMatrixError, RuntimeError):
    """One or more ports are taken. ``str()`` is the one-line message for the user."""

    def __init__(self, clashes: list[PortClash], hint: str) -> None:
        self.clashes = clashes
        what = "; ".join(c.describe() for c in clashes)
        super().__init__(f"{what}; {hint}" if hint else what)


@dataclass(frozen=True)
class PortClash:
    """``port`` (wanted by ``service``) is taken by ``owner`` (``None``: not found)."""

    service: str
    port: int
    owner: str | None

    def describe(self) -> str:
        who = self.owner or "a process that could not be identified"
        return f"port {self.port} ({self.service}) is in use by {who}"


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """``True`` when ``host:port`` can be bound now, as the service's server binds it
    (``SO_REUSEADDR``, so a socket only in TIME_WAIT does not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _describe(pid: int) -> str:
    try:
        p = psutil.Process(pid)
        name = p.name()
        cmd = " ".join(p.cmdline()[:4])
    except psutil.Error:
        return f"pid {pid}"
    if len(cmd) > 80:
        cmd = cmd[:77] + "..."
    return f"pid {pid} ({name}: {cmd})" if cmd and cmd != name else f"pid {pid} ({name})"


def port_owner(port: int) -> str | None:
    """Who listens on TCP ``port`` (any address): ``pid N (name: command)``, ``a process of
    another user`` when the socket is there but its process is not readable, or ``None``."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return None
    listening = [c for c in conns if c.laddr and c.laddr.port == port
                 and c.status == psutil.CONN_LISTEN]
    for c in listening:
        if c.pid:
            return _describe(c.pid)
    return "a process of another user" if listening else None


def check_ports(ports: Mapping[str, int | None] | Iterable[tuple[str, int | None]], *,
                host: str = "127.0.0.1", hint: str = "") -> None:
    """Raise :class:`PortsInUse` naming every taken port of ``ports`` (service → port; ``None``
    ports are skipped). ``hint``: what the user can do, appended to the message."""
    items = ports.items() if isinstance(ports, Mapping) else ports
    clashes = [PortClash(name, port, port_owner(port)) for name, port in items
               if port is not None and not is_free(port, host)]
    if clashes:
        raise PortsInUse(clashes, hint)


OFFSET_HINT = "stop it, or run on other ports with --port-offset N"
