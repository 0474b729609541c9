from tm_common.logging import Redactor, settings_secrets
from tm_common.settings import CommonSettings


def test_password_in_connection_urls_is_a_secret():
    s = CommonSettings(redis_url="redis://app:s3cr3t-pw@10.0.0.5:6379/0",
                       database_url="postgresql+asyncpg://tm:db-pw-42@db:5432/tm")
    secrets = settings_secrets(s)
    assert "s3cr3t-pw" in secrets and "db-pw-42" in secrets
    r = Redactor(secrets)
    assert "s3cr3t-pw" not in str(r.redact({"url": s.redis_url, "msg": f"connect {s.redis_url}"}))
