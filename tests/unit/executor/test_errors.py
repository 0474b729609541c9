"""retCode / HTTP classes and the translation of pybit and requests exceptions."""

import time

import pytest
import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from tm_common.errors import TransientError
from tm_executor.domain.errors import (
    ErrorClass,
    VenueFatal,
    VenueRejected,
    VenueTransient,
    classify_http_status,
    classify_ret_code,
)
from tm_executor.venue_answers import translate

SECRET = "very-secret-value-123"


@pytest.mark.parametrize("code, cls", [
    (10002, ErrorClass.TRANSIENT), (10006, ErrorClass.TRANSIENT), (10016, ErrorClass.TRANSIENT),
    (10000, ErrorClass.TRANSIENT), (10018, ErrorClass.TRANSIENT),
    (10001, ErrorClass.REJECTION), (110007, ErrorClass.REJECTION),
    (110017, ErrorClass.REJECTION), (110072, ErrorClass.REJECTION), (110001, ErrorClass.REJECTION),
    (999999, ErrorClass.REJECTION),
    (10003, ErrorClass.FATAL), (10004, ErrorClass.FATAL), (10005, ErrorClass.FATAL),
    (10010, ErrorClass.FATAL), (33004, ErrorClass.FATAL),
])
def test_ret_code_classes(code, cls):
    assert classify_ret_code(code) is cls


@pytest.mark.parametrize("status, cls", [
    (500, ErrorClass.TRANSIENT), (502, ErrorClass.TRANSIENT), (503, ErrorClass.TRANSIENT),
    (403, ErrorClass.TRANSIENT), (409, ErrorClass.TRANSIENT), (429, ErrorClass.TRANSIENT),
    (401, ErrorClass.FATAL), (404, ErrorClass.REJECTION), (405, ErrorClass.REJECTION),
])
def test_http_status_classes(status, cls):
    assert classify_http_status(status) is cls


def _invalid(code: int, msg: str, headers=None) -> InvalidRequestError:
    return InvalidRequestError(
        request=f'POST http://h/v5/order/create: {{"qty": "1", "note": "{SECRET}"}}',
        message=msg, status_code=code, time="10:00:00", resp_headers=headers or {})


def test_rate_limit_waits_until_the_reset_header():
    now_ms = 1_000_000
    e = translate("place_order", _invalid(10006, "Too many visits",
                                          {"X-Bapi-Limit-Reset-Timestamp": str(now_ms + 700)}),
                  [SECRET], now_ms=now_ms)
    assert isinstance(e, VenueTransient) and isinstance(e, TransientError)
    assert e.ret_code == 10006 and e.retry_after_s == pytest.approx(0.7)
    assert not e.ambiguous                    # a rate-limited request was not processed


def test_rate_limit_wait_is_capped_and_absent_header_means_backoff():
    now = int(time.time() * 1000)
    far = translate("x", _invalid(10006, "m", {"X-Bapi-Limit-Reset-Timestamp": str(now + 10**7)}),
                    [], max_wait_s=2.0)
    assert far.retry_after_s == 2.0
    assert translate("x", _invalid(10006, "m"), []).retry_after_s is None


def test_rejection_and_fatal_keep_code_and_drop_request_params():
    rej = translate("place_order", _invalid(110007, "ab not enough for new order"), [SECRET])
    assert isinstance(rej, VenueRejected) and rej.ret_code == 110007
    fatal = translate("place_order", _invalid(10003, f"API key is invalid. {SECRET}"), [SECRET])
    assert isinstance(fatal, VenueFatal) and fatal.ret_code == 10003
    for err in (rej, fatal):
        assert SECRET not in str(err) and "qty" not in str(err) and "Request" not in str(err)
    assert str(rej) == "place_order: 110007: ab not enough for new order"


def test_http_5xx_is_transient_and_ambiguous():
    e = translate("place_order", FailedRequestError(
        request=f"POST /v5/order/create: {SECRET}", message="HTTP status code is not 200.",
        status_code=503, time="t", resp_headers={}), [SECRET])
    assert isinstance(e, VenueTransient) and e.ambiguous and e.http_status == 503
    assert e.code_label == "http_503" and SECRET not in str(e)


def test_network_errors_are_transient_connect_timeout_is_not_ambiguous():
    rt = translate("place_order", requests.exceptions.ReadTimeout(
        "HTTPConnectionPool(host='h', port=1): Read timed out. (read timeout=1.0)"), [])
    assert isinstance(rt, VenueTransient) and rt.ambiguous and rt.code_label == "network"
    ct = translate("place_order", requests.exceptions.ConnectTimeout("connect timed out"), [])
    assert isinstance(ct, VenueTransient) and not ct.ambiguous
    ce = translate("get_open_orders", requests.exceptions.ConnectionError(
        "Max retries exceeded with url: /v5/order/realtime?orderLinkId=tm-abc&symbol=BTCUSDT"), [])
    assert isinstance(ce, VenueTransient) and "tm-abc" not in str(ce)


def test_missing_credentials_are_fatal_and_other_errors_pass_through():
    assert isinstance(translate("x", PermissionError("Authenticated endpoints require keys."), []),
                      VenueFatal)
    assert translate("x", ZeroDivisionError(), []) is None
