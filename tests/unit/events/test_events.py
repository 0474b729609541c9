import json
from decimal import Decimal

import pytest
from tm_app.schema import full_schema as build_schema
from tm_app.schema import main as schema_main
from tm_common.errors import MalformedEvent
from tm_common.events import Envelope, OrderApproved, event_types
from tm_common.testing.factories import bar_event


def test_round_trip_and_plain_fields():
    env = bar_event("ETHUSDT", 3)
    fields = env.to_fields()
    assert set(fields) == {"type", "schema_version", "event_id", "correlation_id", "causation_id",
                           "ts_event_ns", "ts_init_ns", "body"}
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["type"] == "bar.closed" and fields["schema_version"] == "1"
    body = json.loads(fields["body"])
    assert body["close"] == "101.05" and isinstance(body["close"], str)   # Decimal as string
    assert " " not in fields["body"]                                        # compact JSON
    back = Envelope.from_fields({k.encode(): v.encode() for k, v in fields.items()})
    assert back == env and isinstance(back.body.close, Decimal)


def test_every_stream_event_has_a_frozen_type_and_version():
    names = set(event_types())
    assert {"bar.closed", "dvol.updated", "regime.detected", "signal.generated", "position.sized",
            "order.approved", "order.rejected", "breaker.state_changed", "order.reported",
            "order.filled", "portfolio.snapshotted", "model.promoted"} <= names
    env = bar_event()
    with pytest.raises((AttributeError, TypeError)):
        env.body.close = Decimal(1)  # type: ignore[misc]
    for cls in event_types().values():
        assert cls.SCHEMA_VERSION >= 1


def test_unknown_fields_ignored():
    fields = bar_event().to_fields()
    body = json.loads(fields["body"])
    body["added_in_v2"] = {"x": 1}
    fields["body"] = json.dumps(body)
    fields["new_envelope_field"] = "x"
    assert Envelope.from_fields(fields).body.instrument == "BTCUSDT"


@pytest.mark.parametrize("mutate, needle", [
    (lambda f: f.update(body="{not json"), "invalid body"),
    (lambda f: f.update(type="bar.exploded"), "unknown event type"),
    (lambda f: f.pop("event_id"), "missing envelope field"),
    (lambda f: f.update(body=json.dumps({"instrument": "BTCUSDT"})), "invalid body"),
    (lambda f: f.update(body=f["body"].replace('"100.75"', '"abc"')), "invalid body"),
    (lambda f: f.update(schema_version="99"), "newer than supported"),
    (lambda f: f.update(ts_event_ns="soon"), "non-integer"),
    (lambda f: f.update(body=json.dumps({**json.loads(f["body"]), "open_time_ms": "x"})), "invalid body"),
])
def test_malformed_raises_one_clear_error(mutate, needle):
    fields = bar_event().to_fields()
    mutate(fields)
    with pytest.raises(MalformedEvent, match=needle):
        Envelope.from_fields(fields)


def test_non_utf8_is_malformed():
    fields = {k.encode(): v.encode() for k, v in bar_event().to_fields().items()}
    fields[b"body"] = b"\xff\xfe"
    with pytest.raises(MalformedEvent):
        Envelope.from_fields(fields)


def test_caused_ids_are_deterministic_and_chain():
    root = bar_event()
    o = OrderApproved(intent_id="i", instrument="BTCUSDT", bar_time_ms=1, side="Buy",
                      qty=Decimal("0.001"), target_qty=Decimal("0.001"))
    a = root.caused(o, index=0, ts_init_ns=5)
    b = root.caused(o, index=0, ts_init_ns=9)
    assert a.event_id == b.event_id and a.causation_id == root.event_id
    assert a.correlation_id == root.correlation_id and a.ts_event_ns == root.ts_event_ns
    assert root.caused(o, index=1, ts_init_ns=5).event_id != a.event_id


def test_schema_command_writes_every_event(tmp_path):
    path = tmp_path / "events.schema.json"
    assert schema_main([str(path)]) == 0
    doc = json.loads(path.read_text())
    assert set(doc["events"]) == set(event_types()) and "breaker.command_issued" in doc["events"]
    assert "BarClosed" in doc["$defs"] and doc["$defs"]["BarClosed"]["properties"]["close"]


def test_committed_schema_file_is_current():
    from pathlib import Path
    committed = Path(__file__).resolve().parents[3] / "docs" / "events.schema.json"
    assert json.loads(committed.read_text()) == json.loads(json.dumps(build_schema(), sort_keys=True)), \
        "docs/events.schema.json is stale: run `make schema`"


def test_every_service_event_module_is_in_the_schema():
    """A service's own events (``services/*/tm_*/commands.py``) must be listed, or the schema
    would depend on what a process happened to import."""
    import importlib
    from pathlib import Path

    from tm_app.schema import SERVICE_EVENT_MODULES

    root = Path(__file__).resolve().parents[3] / "services"
    found = {f"{p.parent.name}.commands" for p in root.glob("*/tm_*/commands.py")}
    assert found and found <= set(SERVICE_EVENT_MODULES)
    for name in found:
        importlib.import_module(name)
    before = build_schema()
    assert set(before["events"]) == set(event_types())


@pytest.mark.parametrize("value", ["NaN", "-Infinity", "1e999999", "sNaN", "1e-40"])
def test_a_non_finite_decimal_is_malformed(value):
    f = bar_event().to_fields()
    f["body"] = f["body"].replace('"close":"', f'"close":"{value}", "x":"', 1)
    with pytest.raises(MalformedEvent, match=r"\$\.close is not a finite number"):
        Envelope.from_fields(f)


def test_nested_decimals_are_checked_too():
    from tm_common.events import PortfolioSnapshotted, PositionView

    d = Decimal(1)
    body = PortfolioSnapshotted(bar_time_ms=0, equity=d, cash=d, realised_pnl=d, unrealised_pnl=d,
                                fees=d, funding=d, peak_equity=d, drawdown=0.0,
                                positions=(PositionView(instrument="BTCUSDT", qty=d, avg_price=d,
                                                        mark_price=Decimal("NaN"),
                                                        unrealised_pnl=d),))
    f = Envelope.root(body, key="k", correlation_id="c", ts_event_ns=1, ts_init_ns=1).to_fields()
    with pytest.raises(MalformedEvent, match=r"positions\[0\]\.mark_price"):
        Envelope.from_fields(f)


@pytest.mark.parametrize("field, value, msg", [("schema_version", "0", "< 1"),
                                               ("schema_version", "-1", "< 1"),
                                               ("ts_event_ns", str(2**70), "out of range"),
                                               ("ts_init_ns", "-5", "out of range")])
def test_envelope_numbers_out_of_range_are_malformed(field, value, msg):
    f = bar_event().to_fields()
    f[field] = value
    with pytest.raises(MalformedEvent, match=msg):
        Envelope.from_fields(f)


def test_schema_descriptions_do_not_depend_on_msgspec_docstring_handling():
    """msgspec releases differ: some copy a docstring verbatim, some dedent it. The generator
    cleans every description itself, so both forms give the same document."""
    from tm_common.events.schema import normalise_descriptions

    verbatim = {"A": {"description": "First line.\n\n    Indented body\n      deeper\n    ",
                      "properties": {"x": {"description": "  x\n  y"}}}}
    dedented = {"A": {"description": "First line.\n\nIndented body\n  deeper",
                      "properties": {"x": {"description": "x\ny"}}}}
    assert normalise_descriptions(verbatim) == normalise_descriptions(dedented) == dedented
    schema = build_schema()
    for name, d in schema["$defs"].items():
        doc = d.get("description", "")
        assert doc == doc.strip() and "\n    " not in doc, name
