from tm_common.logging import Redactor, settings_secrets
from tm_common.settings import CommonSettings


def test_password_in_connection_urls_is_a_secret():
    s = CommonSettings(redis_url="redis://app:s3cr3t-pw@10.0.0.5:6379/0",
                       database_url="postgresql+asyncpg://tm:db-pw-42@db:5432/tm")
    secrets = settings_secrets(s)
    assert "s3cr3t-pw" in secrets and "db-pw-42" in secrets
    r = Redactor(secrets)
    assert "s3cr3t-pw" not in str(r.redact({"url": s.redis_url, "msg": f"connect {s.redis_url}"}))


# -- query-string passwords (issue 19, part 5) ---------------------------------------------------
QS_PW = "SECqs-pw/5+x"                     # "/" and "+" make its raw and encoded forms differ
QS_PW_ENC = "SECqs-pw%2F5%2Bx"


def test_query_string_passwords_are_secrets_like_netloc_ones():
    s = CommonSettings.from_values(
        redis_url=f"redis://10.0.0.5:6379/0?password={QS_PW_ENC}",
        database_url=f"postgresql+asyncpg://tm@db:5432/tm?sslmode=require&sslpassword=kp-{QS_PW_ENC}"
                     "&application_name=tm")
    secrets = settings_secrets(s)
    assert {QS_PW, QS_PW_ENC, f"kp-{QS_PW}", f"kp-{QS_PW_ENC}"} <= set(secrets)
    assert "tm" not in secrets and "require" not in secrets, "only secret-named parameters"
    r = Redactor(secrets)
    text = str(r.redact({"msg": f"connect {s.redis_url} then {s.database_url}",
                         "decoded": f"pw is {QS_PW}", "nested": [{"x": f"kp-{QS_PW}"}]}))
    assert QS_PW not in text and QS_PW_ENC not in text, text
    assert "application_name=tm" in text and "sslmode=require" in text


def test_any_url_in_a_log_line_has_its_passwords_hidden(capsys):
    """Even a URL the settings do not hold (a driver's message, a URL built at run time)."""
    import io
    import json

    import structlog
    from tm_common.logging import configure_logging, redact_url

    out = io.StringIO()
    configure_logging(CommonSettings.from_values(), stream=out)
    url = f"redis://app:nw-{QS_PW_ENC}@h:6379/0?password={QS_PW_ENC}&token=t0k-9a&db=0"
    structlog.get_logger("t").error("cannot connect", url=url, detail=f"to {url}: refused")
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["url"] == "redis://app:***@h:6379/0?password=***&token=***&db=0"
    assert line["detail"] == f"to {line['url']}: refused"
    assert redact_url("https://h/x?sslpassword=a&API_KEY=b&Secret-Thing=c&user=u") == \
        "https://h/x?sslpassword=***&API_KEY=***&Secret-Thing=***&user=u"
    assert redact_url("no url here, password=1 (not a query)") == \
        "no url here, password=1 (not a query)"
