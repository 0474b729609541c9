"""The shadow book's view of the paper run's instruments file: each rewrite once, nothing while
there is none, a bad file named; the paper account takes only what differs."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from tm_app.paper_instruments import answer, write_answer
from tm_app.shadow.instruments import FollowedFile
from tm_app.shadow.venue import PaperVenue
from tm_common.instruments import DEFAULT_INSTRUMENTS

BTC, ETH = DEFAULT_INSTRUMENTS["BTCUSDT"], DEFAULT_INSTRUMENTS["ETHUSDT"]


def test_each_rewrite_is_seen_once_and_a_bad_file_is_named(tmp_path):
    path = tmp_path / "instruments.json"
    followed = FollowedFile(path)
    assert FollowedFile(None).changed() is None
    assert followed.changed() is None                       # not written yet
    write_answer(path, answer({"BTCUSDT": BTC}))
    first = followed.changed()
    assert first == answer({"BTCUSDT": BTC}) and followed.changed() is None
    write_answer(path, answer({"BTCUSDT": BTC}))            # rewritten, the same text
    assert followed.changed() is None
    write_answer(path, answer({"BTCUSDT": replace(BTC, qty_step=Decimal("0.01"))}))
    assert followed.changed() != first
    path.write_text("{not json")
    with pytest.raises(ValueError, match=str(path)):
        followed.changed()
    assert list(tmp_path.iterdir()) == [path]               # no temporary file left


def test_the_paper_account_takes_only_what_differs_for_its_symbols():
    venue = PaperVenue(("BTCUSDT", "ETHUSDT"), initial_balance=Decimal(1000),
                       slippage_bps=Decimal(0), seed=1)
    sol = DEFAULT_INSTRUMENTS["SOLUSDT"]
    doc = answer({"BTCUSDT": replace(BTC, qty_step=Decimal("0.01")), "ETHUSDT": ETH,
                  "SOLUSDT": sol})
    assert venue.follow(doc, source="test") == ["BTCUSDT"]
    assert venue.follow(doc, source="test") == []
    row = venue.get_instruments_info(category="linear", symbol="BTCUSDT")["result"]["list"][0]
    assert row["lotSizeFilter"]["qtyStep"] == "0.01"
    with pytest.raises(ValueError, match="test"):
        venue.follow({"list": [{"symbol": "BTCUSDT"}]}, source="test")


def test_the_paper_account_of_an_unshipped_symbol_reads_its_history_folder(tmp_path):
    """A book trading a symbol the project does not ship (``tm demo --symbols ZZZUSDT
    --history-dir …``) finds its instrument file where the services find its history."""
    from tm_common.testing.instrument_history import (
        UNSHIPPED_SYMBOL,
        unshipped_spec,
        write_instrument,
    )

    write_instrument(tmp_path, unshipped_spec())
    kw = {"initial_balance": Decimal(1000), "slippage_bps": Decimal(2), "seed": 1}
    with pytest.raises(ValueError, match="no instrument specification"):
        PaperVenue((UNSHIPPED_SYMBOL,), **kw)
    venue = PaperVenue((UNSHIPPED_SYMBOL,), history_dir=tmp_path, **kw)
    assert UNSHIPPED_SYMBOL in venue.state.engine.instruments
