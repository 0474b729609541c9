"""Deliberate arming: which venue the executor's URLs point at, and whether ``TM_LIVE_TRADING``
allows it. Pure: URLs and the mode in, a decision or a :class:`ConfigError` out.

Venues, by the URL's host name (REST and, when the private WebSocket is on, WS):

- ``mainnet``: a Bybit or Bytick host (``api.bybit.com``, ``api.bytick.com``,
  ``stream.bybit.com``, regional ``*.bybit.*`` hosts) that is neither testnet nor demo;
- ``testnet``: a Bybit host naming ``testnet`` (``api-testnet.bybit.com``) or ``demo``
  (``api-demo.bybit.com``: demo trading, virtual money);
- ``simulator``: any other host (the exchange simulator, ``http://127.0.0.1:8108``, the default).

Modes (``TM_LIVE_TRADING``; unset or empty = ``off``): ``off`` (simulator only), ``testnet``
(simulator or testnet), ``armed`` (any venue). An unknown mode, a venue the mode does not allow,
or REST and WebSocket on different venues is refused with one line naming ``TM_LIVE_TRADING``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from tm_common.errors import ConfigError

MODES = ("off", "testnet", "armed")
VENUES = ("simulator", "testnet", "mainnet")
_ALLOWED = {"off": ("simulator",), "testnet": ("simulator", "testnet"),
            "armed": ("simulator", "testnet", "mainnet")}
_NEEDS = {"testnet": "testnet (or armed)", "mainnet": "armed"}


@dataclass(frozen=True, slots=True)
class Arming:
    """The venue the executor trades on and the mode that allows it."""

    venue: str
    mode: str
    rest_url: str


def venue_of(url: str) -> str:
    """``mainnet``, ``testnet`` or ``simulator`` for a venue URL (see the module docstring)."""
    host = (urlsplit(url.strip()).hostname or "").lower()
    labels = host.split(".")
    # any label but the top-level domain (a bare name such as "bybit-proxy" counts: when in
    # doubt the venue is treated as real and must be armed)
    if not any(lab.startswith(("bybit", "bytick")) for lab in labels[:-1] or labels):
        return "simulator"
    if "testnet" in host or labels[0].endswith("-demo") or labels[0] == "demo":
        return "testnet"
    return "mainnet"


def check_arming(rest_url: str, live_trading: str | None, ws_url: str | None = None) -> Arming:
    """The :class:`Arming` of these settings, or :class:`ConfigError` (one line) when
    ``live_trading`` is unknown or does not allow the venue. ``ws_url``: the private WebSocket
    (None when it is off)."""
    mode = (live_trading or "off").strip().lower() or "off"
    if mode not in MODES:
        raise ConfigError(f"TM_LIVE_TRADING={live_trading!r} is not a mode: use off, testnet or "
                          "armed")
    venue = venue_of(rest_url)
    urls = [("TM_EXECUTOR_BYBIT_REST_URL", rest_url)]
    if ws_url is not None:
        urls.append(("TM_EXECUTOR_BYBIT_PRIVATE_WS_URL", ws_url))
    for name, url in urls:
        v = venue_of(url)
        if v not in _ALLOWED[mode]:
            raise ConfigError(f"{name} points at Bybit {v} ({urlsplit(url.strip()).hostname}): "
                              f"set TM_LIVE_TRADING={_NEEDS[v]} to trade there (it is {mode}); "
                              "nothing was sent")
    if ws_url is not None and venue_of(ws_url) != venue:
        raise ConfigError(f"the REST URL is {venue} but the private WebSocket URL is "
                          f"{venue_of(ws_url)}: point TM_EXECUTOR_BYBIT_REST_URL and "
                          "TM_EXECUTOR_BYBIT_PRIVATE_WS_URL at the same venue "
                          f"(TM_LIVE_TRADING={mode})")
    return Arming(venue=venue, mode=mode, rest_url=rest_url.strip())
