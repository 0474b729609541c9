"""Signed streams (tm_common.bus.signing): what is signed, what is refused, where keys come from.

The transports and the consumer loop that use it are tested in
``tests/component/bus/test_signed_streams.py`` (in memory) and
``tests/integration/executor/test_forged_orders.py`` (Redis, the executor, the simulator)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from tm_common.bus.signing import (
    BAD_SIGNATURE,
    KEY_HOLDERS,
    MIN_KEY_CHARS,
    SIG_FIELD,
    SIGNED_STREAMS,
    UNSIGNED,
    KeyRing,
    env_var,
    key_field,
    local_keys,
    service_signing_env,
    signing_env,
)
from tm_common.bus.streams import ALL_STREAMS, EXEC_VENUE, MODELS_PROMOTED, RISK_BREAKER, RISK_ORDER
from tm_common.errors import ConfigError
from tm_common.events.base import ENVELOPE_FIELDS
from tm_common.settings import env_name
from tm_common.testing.factories import bar_event
from tm_trainer.settings import TrainerSettings

from ..settings.conftest import SERVICE_SETTINGS

KEY = "k" * MIN_KEY_CHARS
OTHER = "o" * MIN_KEY_CHARS
HOLDER_SETTINGS = {**SERVICE_SETTINGS, "trainer": TrainerSettings}


def entry(ring: KeyRing, stream: str = RISK_ORDER) -> dict[str, str]:
    return ring.fields(stream, bar_event("BTCUSDT", 3))


def test_a_signed_entry_verifies_and_only_the_key_holder_signs():
    ring = KeyRing({RISK_ORDER: KEY})
    signed = entry(ring)
    assert len(signed[SIG_FIELD]) == 64 and ring.refusal(RISK_ORDER, signed) is None
    as_bytes = {k.encode(): v.encode() for k, v in signed.items()}      # what Redis returns
    assert ring.refusal(RISK_ORDER, as_bytes) is None
    assert SIG_FIELD not in entry(ring, "md.bar")                        # no key, no signature
    assert ring.refusal("md.bar", {"anything": "goes"}) is None          # nor a check


def test_unsigned_and_wrongly_signed_entries_are_refused_with_their_reason():
    ring = KeyRing({RISK_ORDER: KEY})
    unsigned = entry(KeyRing())
    assert ring.refusal(RISK_ORDER, unsigned) == UNSIGNED
    assert ring.refusal(RISK_ORDER, {**unsigned, SIG_FIELD: ""}) == UNSIGNED
    forged = entry(KeyRing({RISK_ORDER: OTHER}))                       # another key
    assert ring.refusal(RISK_ORDER, forged) == BAD_SIGNATURE
    # signed for another stream (the same key would not help: the stream name is signed)
    same_key = KeyRing({RISK_ORDER: KEY, EXEC_VENUE: KEY})
    assert same_key.refusal(RISK_ORDER, entry(same_key, EXEC_VENUE)) == BAD_SIGNATURE


@pytest.mark.parametrize("field", ENVELOPE_FIELDS)
def test_changing_any_envelope_field_breaks_the_signature(field):
    ring = KeyRing({RISK_ORDER: KEY})
    signed = entry(ring)
    signed[field] = signed[field] + "0"
    assert ring.refusal(RISK_ORDER, signed) == BAD_SIGNATURE


@given(st.text(max_size=40), st.text(max_size=40))
def test_moving_text_between_fields_breaks_the_signature(a, b):
    """Fields are length-prefixed: no two different field lists sign the same bytes."""
    ring = KeyRing({RISK_ORDER: KEY})
    signed = {**entry(ring), "event_id": a, "correlation_id": b}
    signed[SIG_FIELD] = ring.signature(RISK_ORDER, signed)
    moved = {**signed, "event_id": a + b, "correlation_id": ""}
    if b:
        assert ring.refusal(RISK_ORDER, moved) == BAD_SIGNATURE


def test_keys_are_validated_and_never_shown():
    with pytest.raises(ConfigError, match="risk.order.*at least 32"):
        KeyRing({RISK_ORDER: "short"})
    ring = KeyRing({RISK_ORDER: SecretStr(KEY)})
    assert KEY not in repr(ring) and "risk.order" in repr(ring)

    class S(SERVICE_SETTINGS["executor"]):
        pass
    s = S(signing_key_risk_order=SecretStr("x" * 10))
    with pytest.raises(ConfigError) as e:
        KeyRing.from_settings(s)
    assert "TM_EXECUTOR_SIGNING_KEY_RISK_ORDER" in str(e.value) and "x" * 10 not in str(e.value)


def test_every_holder_reads_exactly_its_keys_from_its_own_variable():
    """The table is the truth: each holder's settings class has one key field per stream it
    holds and none other, read from the variable signing_env renders for it."""
    for holder, cls in HOLDER_SETTINGS.items():
        fields = {f for f in cls.model_fields if f.startswith("signing_key_")}
        held = {s for s, holders in KEY_HOLDERS.items() if holder in holders}
        assert fields == {key_field(s) for s in held}, holder
        for s in held:
            assert env_name(cls, key_field(s)) == env_var(holder, s)
    assert set(SIGNED_STREAMS) <= set(ALL_STREAMS)
    keys = {s: f"{s}-" + KEY for s in SIGNED_STREAMS}
    env = signing_env(keys)
    assert env["TM_EXECUTOR_SIGNING_KEY_RISK_ORDER"] == env["TM_RISK_SIGNING_KEY_RISK_ORDER"]
    assert "TM_SIGNAL_SIGNING_KEY_RISK_ORDER" not in env
    assert set(service_signing_env("signal", keys)) == {"TM_SIGNAL_SIGNING_KEY_MODELS_PROMOTED"}
    assert set(service_signing_env("sizer", keys)) == {
        "TM_SIZER_SIGNING_KEY_RISK_BREAKER", "TM_SIZER_SIGNING_KEY_MODELS_PROMOTED"}
    assert service_signing_env("ingest", keys) == {}


def test_settings_build_the_ring_of_their_keys(monkeypatch):
    for k in [k for k in os.environ if k.upper().startswith("TM_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("TM_EXECUTOR_SIGNING_KEY_RISK_ORDER", KEY)
    monkeypatch.setenv("TM_EXECUTOR_SIGNING_KEY_RISK_BREAKER", OTHER)
    monkeypatch.setenv("TM_RISK_SIGNING_KEY_RISK_ORDER", "r" * 40)     # risk's, not the executor's
    ring = KeyRing.from_settings(SERVICE_SETTINGS["executor"]())
    assert ring.streams == {RISK_ORDER, RISK_BREAKER}
    assert entry(ring)[SIG_FIELD] == entry(KeyRing({RISK_ORDER: KEY}))[SIG_FIELD]
    assert not KeyRing.from_settings(SERVICE_SETTINGS["ingest"]())


def test_a_local_run_keeps_its_keys_in_a_private_file(tmp_path, monkeypatch):
    keys = local_keys(tmp_path)
    assert set(keys) == set(SIGNED_STREAMS) and len(set(keys.values())) == len(keys)
    path = tmp_path / "signing-keys.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert local_keys(tmp_path) == keys                 # stable: pending entries still verify
    for k in [k for k in os.environ if k.upper().startswith("TM_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("TM_DATA_DIR", str(tmp_path))    # tm models promote beside tm up
    trainer = TrainerSettings()
    assert trainer.signing_key_models_promoted.get_secret_value() == keys[MODELS_PROMOTED]
    monkeypatch.setenv("TM_TRAINER_SIGNING_KEY_MODELS_PROMOTED", OTHER)
    assert TrainerSettings().signing_key_models_promoted.get_secret_value() == OTHER
