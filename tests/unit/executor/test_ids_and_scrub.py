"""orderLinkId derivation and secret scrubbing."""

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tm_executor.domain.errors import scrub
from tm_executor.domain.ids import (
    LINK_ID_RE,
    account_tag,
    check_salt,
    is_ours,
    new_salt,
    order_link_id,
)

BYBIT_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


SALT = "abc12345"


def test_known_value_is_stable():
    # A change of derivation would re-place live intents after an upgrade: pin it.
    digest = hashlib.sha256(b"abc12345:intent-1").hexdigest()[:25]
    assert order_link_id("intent-1", SALT) == "tmabc12345-" + digest
    assert len(order_link_id("intent-1", SALT)) == 36


@given(st.text(min_size=0, max_size=300))
def test_deterministic_bounded_and_allowed_charset(intent_id):
    a, b = order_link_id(intent_id, SALT), order_link_id(intent_id, SALT)
    assert a == b
    assert len(a) <= 36 and BYBIT_LINK_ID.match(a) and LINK_ID_RE.match(a)
    assert is_ours(a) and is_ours(a, SALT) and not is_ours(a, "zzz99999")


@given(st.text(max_size=50), st.text(max_size=50))
def test_distinct_intents_get_distinct_ids(x, y):
    if x != y:
        assert order_link_id(x, SALT) != order_link_id(x, "abc12346")
        assert order_link_id(x, SALT) != order_link_id(y, SALT)


def test_salts_are_random_well_formed_and_checked():
    salts = {new_salt() for _ in range(50)}
    assert len(salts) == 50 and all(check_salt(x) == x for x in salts)
    for bad in ("", "short", "UPPER123", "abc-1234", "abc123456"):
        with pytest.raises(ValueError, match="salt must be 8 characters"):
            order_link_id("i", bad)


def test_account_tag_hides_the_key():
    tag = account_tag("my-api-key")
    assert len(tag) == 12 and "my-api-key" not in tag and account_tag(None) == "nokey"


def test_foreign_ids_are_not_ours():
    assert not is_ours("") and not is_ours("manual-1") and not is_ours("tm-short")
    assert not is_ours("tm-325142be9eee013b0b55da92ccbc48a3")      # the unsalted layout


SECRET = "s3cr3t-value-XYZ"
KEY = "key-ABC-123"


def test_scrub_removes_secret_values_and_request_tail():
    pybit_text = (f"Error sign, please check (ErrCode: 10004) (ErrTime: 10:00:00).\n"
                  f"Request → POST http://h/v5/order/create: {{\"qty\": \"0.001\", "
                  f"\"secret\": \"{SECRET}\"}}.")
    out = scrub(pybit_text, [SECRET, KEY])
    assert SECRET not in out and "Request" not in out and "qty" not in out
    assert out.startswith("Error sign, please check (ErrCode: 10004)")


def test_scrub_headers_key_values_and_query_strings():
    text = (f"headers {{'X-BAPI-API-KEY': '{KEY}', 'X-BAPI-SIGN': 'abcdef0123'}} "
            f"api_key={KEY}&sign=deadbeef url http://h/v5/order/realtime?orderLinkId=tm-1&x=2")
    out = scrub(text)
    for leaked in (KEY, "abcdef0123", "deadbeef", "orderLinkId=tm-1"):
        assert leaked not in out
    assert "X-BAPI-API-KEY" in out and "***" in out


def test_scrub_caps_length_and_keeps_plain_messages():
    assert scrub("Too many visits. Exceeded the API Rate Limit.") == \
        "Too many visits. Exceeded the API Rate Limit."
    assert len(scrub("x" * 5000)) == 300


@given(st.text(max_size=200), st.text(alphabet=st.characters(blacklist_categories=("Zs", "Cc")), min_size=8, max_size=40))
def test_scrub_never_returns_a_secret(prefix, secret):
    out = scrub(prefix + secret + prefix, [secret])
    assert secret not in out or secret in scrub(prefix + prefix, [secret])
