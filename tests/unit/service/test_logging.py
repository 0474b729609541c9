"""tm_common.logging: JSON lines, service and event context, secrets redacted everywhere."""

from __future__ import annotations

import io
import json
import logging

import structlog
from hypothesis import assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from tm_common.admin_tokens import MIN_ADMIN_TOKEN_CHARS
from tm_common.logging import REDACTED, bound_event, configure_logging, event_log_context, settings_secrets
from tm_common.settings import CommonSettings
from tm_common.testing.factories import bar_event

SECRET = "s3cr3t-Admin-Token-771-e2a"


def make(**kw) -> tuple[CommonSettings, io.StringIO]:
    s = CommonSettings(service_name="risk", admin_token=SECRET, **kw)
    out = io.StringIO()
    configure_logging(s, stream=out)
    return s, out


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(x) for x in out.getvalue().splitlines() if x.strip()]


def test_one_json_object_per_line_with_service_and_level():
    _, out = make()
    structlog.get_logger("t").info("hello", n=3)
    structlog.get_logger("t").warning("multi\nline message")
    got = lines(out)
    assert len(got) == 2 and len(out.getvalue().splitlines()) == 2
    assert got[0]["event"] == "hello" and got[0]["n"] == 3 and got[0]["service"] == "risk"
    assert got[0]["level"] == "info" and got[0]["timestamp"].endswith("Z")
    assert got[1]["event"] == "multi\nline message"


def test_bound_event_adds_correlation_id_and_instrument_only_inside():
    _, out = make()
    log = structlog.get_logger("t")
    ev = bar_event("ETHUSDT", 2)
    with bound_event(ev):
        log.info("inside")
    log.info("outside")
    inside, outside = lines(out)
    assert inside["correlation_id"] == ev.correlation_id and inside["instrument"] == "ETHUSDT"
    assert inside["event_type"] == "bar.closed"
    assert "correlation_id" not in outside and "instrument" not in outside


def test_instrument_falls_back_to_the_correlation_id():
    ev = bar_event("SOLUSDT", 0)
    assert event_log_context(ev)["instrument"] == "SOLUSDT"


def test_stdlib_loggers_are_json_too_and_respect_level():
    _, out = make(log_level="WARNING")
    logging.getLogger("uvicorn.error").warning("Started %s", "server")
    logging.getLogger("uvicorn.error").info("dropped below WARNING")
    structlog.get_logger("t").info("also dropped")
    (got,) = lines(out)
    assert got["event"] == "Started server" and got["logger"] == "uvicorn.error"
    assert got["service"] == "risk"


def test_secret_values_and_secret_keys_are_redacted():
    _, out = make()
    log = structlog.get_logger("t")
    log.info("leak", note=f"token={SECRET}!", api_key="k-123", API_SECRET="x", password=None,
             headers={"Authorization": "Bearer abc", "x": [SECRET, 1]}, sessionToken="t")
    logging.getLogger("lib").warning("connecting with %s", SECRET)
    try:
        raise RuntimeError(f"bad credentials {SECRET}")
    except RuntimeError:
        log.exception("failed")
    raw = out.getvalue()
    assert SECRET not in raw
    leak, lib, failed = lines(out)
    assert leak["note"] == f"token={REDACTED}!"
    assert leak["api_key"] == leak["API_SECRET"] == leak["sessionToken"] == REDACTED
    assert leak["password"] is None                 # nothing to hide
    assert leak["headers"] == {"Authorization": REDACTED, "x": [REDACTED, 1]}
    assert lib["event"] == f"connecting with {REDACTED}"
    assert f"RuntimeError: bad credentials {REDACTED}" in failed["exception"]


def test_objects_rendered_by_repr_are_redacted():
    _, out = make()

    class Creds:
        def __repr__(self) -> str:
            return f"Creds(key={SECRET})"

    structlog.get_logger("t").info("obj", creds_obj=Creds())
    assert SECRET not in out.getvalue()


def test_settings_secrets_finds_secretstr_fields():
    s = CommonSettings(admin_token=SECRET)
    assert settings_secrets(s) == [SECRET]
    assert settings_secrets(CommonSettings()) == []


@hsettings(max_examples=150, deadline=None)
@given(secret=st.text(min_size=MIN_ADMIN_TOKEN_CHARS, max_size=40), prefix=st.text(max_size=20),
       suffix=st.text(max_size=20))
def test_any_secret_is_hidden_and_the_line_stays_json(secret, prefix, suffix):
    """Whatever characters the secret has (quotes, backslashes, control or non-ASCII), it never
    reaches the output and every line still parses."""
    assume("*" not in secret)          # a secret made of the mask itself could reappear
    s = CommonSettings(service_name="risk", admin_token=secret)
    out = io.StringIO()
    configure_logging(s, stream=out)
    structlog.get_logger("t").info("msg", note=prefix + secret + suffix, **{"n" + "x": [secret]})
    (line,) = lines(out)
    assert secret not in line["note"] and line["nx"] == [REDACTED]
    assert line["note"] == (prefix + secret + suffix).replace(secret, REDACTED)
