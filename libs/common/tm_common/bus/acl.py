"""Least-privilege Redis: one ACL user per service, its permissions derived from one table.

:data:`ACCESS` is the stream topology as the services declare it (their ``INPUTS``, what they
publish, what they only read, their state keys; ``docs/ARCHITECTURE.md`` §2–§3). From it,
:func:`acl_rules` renders each user's rules:

- **Redis 7** (selectors): a root that may only connect (``PING``, ``HELLO``, ``CLIENT
  SETINFO``...), and one selector per capability, each pairing commands with keys, so a command
  is allowed only when one selector allows it *and all its keys*:

  - *consume*: ``XREADGROUP``/``XACK``/``XAUTOCLAIM``/``XPENDING``/``XGROUP CREATE``/``XINFO``
    on the streams it consumes (read-write keys: reading a group moves its cursor), but no
    ``XADD``: a consumer cannot add to its inputs;
  - *publish*: ``XADD`` to the streams it publishes and to the dead-letter streams of its inputs;
  - *read*: ``XREAD``/``XRANGE``/``XREVRANGE``/``XINFO`` with read-only keys (``%R~``);
  - *state*: ``GET``/``SET``/``INCR`` on ``{ns}state:{group}`` and ``{ns}state:{group}:*``
    (handler state, the writer generation, ingest's publisher marks);
  - *script*: ``EVALSHA``/``SCRIPT LOAD`` with all of the above keys (the commit script); Redis
    checks every command a script runs against the same selectors, so a script can do nothing
    its caller could not.

- **Redis 6.2** (the embedded server when no Redis 7 is installed): no selectors and no
  read-only keys, so each user gets the union of its commands on the union of its keys. It
  still cannot touch another service's state, but it can add to a stream it consumes or reads:
  ingest, whose lockstep probe reads every stream, may then add to every stream (the signed
  ones still refuse its entries).

The ``default`` user is disabled (``user default reset``: no password matches, no command); the
``tm-admin`` user (the ``tm`` CLI, the paper relay, the operator) may do everything; ``probe``
(no password) may only ``PING`` (container health checks).

Passwords are written to ACL files as SHA-256 hashes (``#<hex>``), never in clear; clients put
them in their URL (``redis://<user>:<password>@host:port/db``, redacted in logs).

The files themselves are written by the operator's commands: ``python -m tm_app.stack.redis_acl
--out DIR`` (an ACL file and one password file per user, for an operator's Redis and the Helm
chart's Secret) and ``python -m tm_app.stack.compose_secrets`` (the compose stack's).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tm_common.bus import streams as st

ADMIN_USER = "tm-admin"
PROBE_USER = "probe"


@dataclass(frozen=True)
class ServiceAccess:
    """What one service does on Redis. ``name`` is its ACL user and its consumer group."""

    name: str
    consumes: tuple[str, ...] = ()      # consumer-group inputs (the service's INPUTS)
    publishes: tuple[str, ...] = ()     # streams it adds to
    reads: tuple[str, ...] = ()         # read without a group (XREAD/XRANGE/XINFO)
    state: bool = True                  # owns {ns}state:{name} and {ns}state:{name}:*
    own_namespaces: tuple[str, ...] = field(default=())  # key globs under ns it owns fully

    def publish_streams(self) -> tuple[str, ...]:
        """Published streams plus the dead-letter stream of each consumed one."""
        return tuple(dict.fromkeys((*self.publishes, *(st.dlq(s) for s in self.consumes))))


# The one table. Each service's ``consumes`` is the ``INPUTS`` of its app.py
# (tests/security/test_redis_acl.py checks they agree).
ACCESS: Mapping[str, ServiceAccess] = {a.name: a for a in (
    # ingest's lockstep replay watches every group's lag (XINFO GROUPS, XREVRANGE): read-only.
    ServiceAccess("ingest", publishes=(st.MD_BAR, st.MD_DVOL, st.MD_FUNDING, st.MD_MARK),
                  reads=st.ALL_STREAMS),
    ServiceAccess("regime", consumes=(st.MD_BAR, st.MODELS_PROMOTED),
                  publishes=(st.REGIME_STATE,)),
    ServiceAccess("signal", consumes=(st.MD_BAR, st.MD_DVOL, st.MD_FUNDING, st.MODELS_PROMOTED),
                  publishes=(st.SIGNAL_TL,)),
    ServiceAccess("sizer", consumes=(st.MD_BAR, st.SIGNAL_TL, st.REGIME_STATE, st.RISK_BREAKER,
                                     st.PORTFOLIO_SNAPSHOT, st.MODELS_PROMOTED,
                                     st.SIZER_COMMAND),
                  publishes=(st.SIZING_TARGET, st.SIZER_COMMAND)),
    ServiceAccess("risk", consumes=(st.SIZING_TARGET, st.PORTFOLIO_SNAPSHOT, st.MD_BAR,
                                    st.EXEC_REPORT, st.RISK_COMMAND, st.PORTFOLIO_VALUATION),
                  publishes=(st.RISK_ORDER, st.RISK_REJECTION, st.RISK_BREAKER,
                             st.RISK_COMMAND)),
    # the executor reads the newest portfolio snapshot for reconciliation (XREVRANGE).
    ServiceAccess("executor", consumes=(st.MD_BAR, st.RISK_BREAKER, st.RISK_ORDER,
                                        st.EXEC_VENUE),
                  publishes=(st.EXEC_REPORT, st.EXEC_VENUE), reads=(st.PORTFOLIO_SNAPSHOT,)),
    ServiceAccess("portfolio", consumes=(st.EXEC_REPORT, st.MD_BAR, st.MD_MARK),
                  publishes=(st.PORTFOLIO_SNAPSHOT, st.PORTFOLIO_VALUATION)),
    # training jobs and `tm models promote` announce promotions; nothing else.
    ServiceAccess("trainer", publishes=(st.MODELS_PROMOTED,), state=False),
    # the shadow book mirrors production's market streams and runs its own book under
    # {ns}shadow:<candidate>: (tm_app.shadow).
    ServiceAccess("shadow", reads=(st.MD_DVOL, st.MD_FUNDING, st.MD_BAR), state=False,
                  own_namespaces=("shadow:*",)),
)}

SERVICE_USERS: tuple[str, ...] = tuple(ACCESS)
ALL_USERS: tuple[str, ...] = (*SERVICE_USERS, ADMIN_USER)

# What every user may do to use a connection at all (redis-py's handshake, transactions).
_CONNECT = ("+ping", "+hello", "+auth", "+select", "+echo",
            "+client|setname", "+client|getname", "+client|id", "+multi", "+exec", "+discard")
_CONSUME = ("+xreadgroup", "+xack", "+xautoclaim", "+xclaim", "+xpending", "+xgroup|create",
            "+xgroup|createconsumer", "+xinfo|groups", "+xinfo|stream", "+xinfo|consumers",
            "+xrange", "+xrevrange", "+xlen")
_PUBLISH = ("+xadd", "+xlen", "+xinfo|groups", "+xinfo|stream", "+xrange", "+xrevrange")
_READ = ("+xread", "+xrange", "+xrevrange", "+xlen", "+xinfo|groups", "+xinfo|stream")
_STATE = ("+get", "+set", "+incr", "+incrby", "+exists")
_SCRIPT = ("+evalsha", "+eval", "+script|load", "+script|exists")
_OWN = ("+@read", "+@write", "+@stream", "+@keyspace", "+@string", "+scan", "-flushall",
        "-flushdb", "-swapdb")


def _k(ns: str, names: Iterable[str], perm: str = "~") -> list[str]:
    return [f"{perm}{ns}{n}" for n in names]


def _state_keys(ns: str, a: ServiceAccess) -> list[str]:
    return [f"~{ns}state:{a.name}", f"~{ns}state:{a.name}:*"] if a.state else []


def selectors(a: ServiceAccess, ns: str) -> list[str]:
    """The Redis 7 selectors of ``a`` under namespace (key prefix or glob) ``ns``."""
    out = []
    if a.consumes:
        out.append(" ".join([*_k(ns, a.consumes), *_CONSUME]))
    if a.publish_streams():
        out.append(" ".join([*_k(ns, a.publish_streams()), *_PUBLISH]))
    if a.reads:
        out.append(" ".join([*_k(ns, a.reads, "%R~"), *_READ]))
    if a.state:
        out.append(" ".join([*_state_keys(ns, a), *_STATE]))
    if a.own_namespaces:
        out.append(" ".join([*_k(ns, a.own_namespaces), *_OWN, *_SCRIPT]))
    # Scripts on the streams it only reads too (the lockstep probe's one-script busy check):
    # every command inside a script is checked against the selectors above, so a script can
    # read those streams and write none of them.
    script_keys = [*_k(ns, a.consumes), *_k(ns, a.publish_streams()), *_k(ns, a.reads),
                   *_state_keys(ns, a)]
    if a.consumes or a.state:
        out.append(" ".join([*script_keys, *_SCRIPT]))
    return [f"({s})" for s in out]


def _flat(a: ServiceAccess, ns: str) -> str:
    """Redis 6.2: the union of the selectors (no read/write split, no selectors)."""
    keys = [*_k(ns, a.consumes), *_k(ns, a.publish_streams()), *_k(ns, a.reads),
            *_state_keys(ns, a), *_k(ns, a.own_namespaces)]
    cmds = [*(_CONSUME if a.consumes else ()), *_PUBLISH, *(_READ if a.reads else ()),
            *(_STATE if a.state else ()), *(_OWN if a.own_namespaces else ()), *_SCRIPT]
    return " ".join([*dict.fromkeys(keys), *dict.fromkeys(cmds)])


def password_hash(password: str) -> str:
    """The ACL file form of ``password``: ``#`` + SHA-256 hex."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def acl_rules(user: str, ns: str = "tm:", *, redis7: bool = True) -> str:
    """The rules of ``user`` (a service of :data:`ACCESS`, ``tm-admin`` or ``probe``), without
    its password. ``ns``: the key prefix (``tm:``), or a glob (``*``) for a server shared by
    several namespaces (the embedded one: ``tm up``'s ``tm:``, each ``tm demo`` run's own)."""
    if user == ADMIN_USER:
        return "~* &* +@all"
    if user == PROBE_USER:
        return "resetchannels -@all +ping"
    a = ACCESS.get(user)
    if a is None:
        raise ValueError(f"no Redis ACL for {user!r} (choose from {', '.join(ALL_USERS)})")
    root = " ".join(("resetchannels", "-@all", *_CONNECT))
    if redis7:
        return " ".join((root, *selectors(a, ns)))
    return " ".join((root, _flat(a, ns)))


def acl_file(passwords: Mapping[str, str], ns: str = "tm:", *, redis7: bool = True) -> str:
    """An ACL file (``--aclfile``) for ``passwords`` (user → clear password; hashed here): one
    line per user, ``probe`` with no password, and ``default`` disabled."""
    unknown = sorted(set(passwords) - set(ALL_USERS))
    if unknown:
        raise ValueError(f"no Redis ACL for {', '.join(unknown)}")
    lines = ["user default reset", f"user {PROBE_USER} reset on nopass "
             f"{acl_rules(PROBE_USER)}"]
    for user, pw in passwords.items():
        lines.append(f"user {user} reset on {password_hash(pw)} "
                     f"{acl_rules(user, ns, redis7=redis7)}")
    return "\n".join(lines) + "\n"


def new_passwords(users: Iterable[str] = ALL_USERS) -> dict[str, str]:
    """A random URL-safe password (256 bits) per user."""
    return {u: secrets.token_urlsafe(32) for u in users}


def user_url(url: str, user: str, password: str) -> str:
    """``url`` (``redis://host:port/db`` or ``rediss://...``) with ``user:password@``;
    credentials already in ``url`` are replaced."""
    from urllib.parse import quote, urlsplit, urlunsplit

    p = urlsplit(url)
    host = p.netloc.rpartition("@")[2]
    return urlunsplit((p.scheme, f"{quote(user, safe='')}:{quote(password, safe='')}@{host}",
                       p.path, p.query, p.fragment))


def derive_password(admin_password: str, user: str) -> str:
    """``user``'s password on a server whose ``tm-admin`` password is ``admin_password``
    (the embedded one): HMAC-SHA256, URL-safe. Whoever holds the admin password can derive
    every service's; a service's password gives nothing back."""
    import base64
    import hmac

    mac = hmac.new(admin_password.encode(), f"tm-redis-user:{user}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def scoped_url(url: str, user: str) -> str:
    """The URL a process named ``user`` gets, given the URL of whoever starts it.

    - ``url`` as ``tm-admin`` (a local stack's embedded server): ``user``'s own URL with its
      derived password when ``user`` is in :data:`ACCESS`, else the URL without credentials
      (a process that does not use Redis, such as the simulator: it gets nothing).
    - any other ``url`` (an operator's, with its own credentials or none): unchanged.
    """
    from urllib.parse import unquote, urlsplit, urlunsplit

    p = urlsplit(url)
    if unquote(p.username or "") != ADMIN_USER or p.password is None:
        return url
    if user in ACCESS:
        return user_url(url, user, derive_password(unquote(p.password), user))
    return urlunsplit((p.scheme, p.netloc.rpartition("@")[2], p.path, p.query, p.fragment))
