"""Configuration: one TOML file, ${VAR} expansion, environment overrides, clear errors, no secret ever printed."""
from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from ingest.settings import ConfigError, load_settings, mask_url, settings_from_dict

SECRET = "super-secret-token-0123456789"


def write(tmp_path, text: str):
    path = tmp_path / "crm-ingest.toml"
    path.write_text(text)
    return path


def test_no_config_file_means_the_embedded_default(tmp_path):
    settings = load_settings(tmp_path / "absent.toml", env={})
    assert settings.database_url == "sqlite:///var/crm-ingest.db"
    assert settings.uses_embedded_broker
    assert settings.admin_token is None


def test_variables_expand_from_the_environment(tmp_path):
    path = write(tmp_path, 'admin_token = "${TOKEN}"\n[sources.g]\nprovider = "generic"\ntoken = "x-${TOKEN}"\n')
    settings = load_settings(path, env={"TOKEN": SECRET})
    assert settings.admin_token.get_secret_value() == SECRET
    assert settings.sources["g"].token.get_secret_value() == f"x-{SECRET}"


def test_an_unset_variable_is_an_error_not_an_empty_string(tmp_path):
    path = write(tmp_path, 'admin_token = "${NOT_SET}"\n')
    with pytest.raises(ConfigError, match="NOT_SET is not set"):
        load_settings(path, env={})


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, 'database_url = "sqlite:///file.db"\nbroker_url = "redis://file"\nadmin_token = "file"\n')
    env = {"DATABASE_URL": "postgresql+psycopg://env/db", "BROKER_URL": "redis://env:6379/0",
           "CRM_INGEST_ADMIN_TOKEN": "env-token"}
    settings = load_settings(path, env=env)
    assert (settings.database_url, settings.broker_url) == ("postgresql+psycopg://env/db", "redis://env:6379/0")
    assert settings.admin_token.get_secret_value() == "env-token"


def test_every_problem_is_reported_at_once_with_its_place():
    raw = {"max_body_bytes": -1, "colour": "blue", "sources": {
        "a": {"provider": "nope"}, "b": {"provider": "generic"}, "c": {"provider": "generic", "token": "t", "tokn": 1},
    }}
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(raw, env={})
    text = str(caught.value)
    for place in ("max_body_bytes", "colour", "sources.a.provider", "sources.b", "sources.c.tokn"):
        assert place in text


def test_a_source_without_credentials_is_rejected_so_nothing_is_open():
    with pytest.raises(ConfigError, match="needs token or url_secret"):
        settings_from_dict({"sources": {"g": {"provider": "generic"}}}, env={})


def test_a_short_url_secret_is_rejected():
    with pytest.raises(ConfigError, match="at least 16"):
        settings_from_dict({"sources": {"g": {"provider": "generic", "url_secret": "short"}}}, env={})


def test_a_source_name_must_be_url_safe():
    with pytest.raises(ConfigError, match="letters, digits"):
        settings_from_dict({"sources": {"a/b": {"provider": "generic", "token": "t"}}}, env={})


@pytest.mark.parametrize("url, says", [
    ("notaurl", "not a database URL"), ("mysql+pymysql://db/x", "PostgreSQL or SQLite"),
    ("postgresql+nosuchdriver://db/x", "not a database URL"),
])
def test_a_database_url_crm_ingest_cannot_open_is_a_problem(url, says):
    with pytest.raises(ConfigError, match=f"database_url.*{says}"):
        settings_from_dict({"database_url": url}, env={})


@pytest.mark.parametrize("url", ["nosuchscheme://x", "localhost:6379", "kafka://broker:9092"])
def test_a_broker_url_of_a_broker_crm_ingest_does_not_run_on_is_a_problem(url):
    with pytest.raises(ConfigError, match="broker_url must start with one of redis://"):
        settings_from_dict({"broker_url": url}, env={})


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://h:6380/1", "amqp://guest:guest@h:5672//",
                                 "pyamqp://h//", "filesystem://"])
def test_the_supported_brokers_are_accepted(url):
    assert settings_from_dict({"broker_url": url}, env={}).broker_url == url


@pytest.mark.parametrize("url", ["amqp://guest:guest@h:5672/crm-prod", "pyamqp://h//"])
def test_a_key_prefix_on_rabbitmq_is_a_problem_that_points_to_a_vhost(url):
    """RabbitMQ has no key prefix: deployments sharing a vhost would take each other's messages."""
    with pytest.raises(ConfigError, match="broker_key_prefix applies to Redis only.*virtual host"):
        settings_from_dict({"broker_url": url, "broker_key_prefix": "prod:"}, env={})


def test_a_bad_database_url_problem_never_shows_its_password():
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"database_url": f"mysql://user:{SECRET}@db/x"}, env={})
    assert SECRET not in str(caught.value)


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path, "this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, env={})


def run_cli(tmp_path, *args, env_extra=None):
    env = {"PATH": "/usr/bin:/bin", "CRM_INGEST_CONFIG": str(tmp_path / "crm-ingest.toml"), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_check_config_prints_problems_and_exits_non_zero(tmp_path):
    write(tmp_path, '[sources.g]\nprovider = "generic"\ntokn = "x"\n')
    result = run_cli(tmp_path, "check-config")
    assert result.returncode == 1
    assert "sources.g.tokn: unknown key" in result.stderr


def test_check_config_accepts_a_good_file_and_never_prints_secrets(tmp_path):
    write(tmp_path, f'admin_token = "{SECRET}"\ndatabase_url = "postgresql+psycopg://u:{SECRET}@db/x"\n'
                    f'[sources.g]\nprovider = "generic"\ntoken = "{SECRET}"\nurl_secret = "{SECRET}"\n')
    result = run_cli(tmp_path, "check-config")
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert "/hooks/g/<url_secret>" in result.stdout


def test_check_config_warns_of_guessable_secrets_and_crm_calls_in_clear_but_accepts_them(tmp_path):
    write(tmp_path, 'admin_token = "admin"\n[sources.g]\nprovider = "generic"\ntoken = "x1"\n'
                    '[destinations.h]\nkind = "hubspot"\ntoken = "pat-na1-0123"\nbase_url = "http://crm.example"\n'
                    '[destinations.local]\nkind = "hubspot"\ntoken = "t"\nbase_url = "http://127.0.0.1:9999"\n')
    result = run_cli(tmp_path, "check-config")
    assert result.returncode == 0 and "configuration OK" in result.stdout
    warnings = [line for line in result.stderr.splitlines()
                if line.startswith("warning: ") and not line.startswith("warning: no database at")]
    assert warnings == [
        "warning: admin_token is shorter than 16 characters: whoever guesses it can reach the admin API",
        "warning: sources.g.token is shorter than 16 characters: whoever guesses it can reach webhooks to this source",
        "warning: destinations.h.base_url is http://: its credentials and the people it carries cross the network "
        "unencrypted (use https://)"]
    assert "x1" not in result.stdout + result.stderr and "pat-na1" not in result.stdout + result.stderr


def test_check_config_warns_of_a_sqlite_database_not_created_yet_but_accepts_it(tmp_path):
    write(tmp_path, f'admin_token = "{SECRET}"\n')
    result = run_cli(tmp_path, "check-config")
    assert result.returncode == 0 and "configuration OK" in result.stdout
    assert f"warning: no database at {tmp_path}/var/crm-ingest.db" in result.stderr
    assert "crm-ingest migrate" in result.stderr
    assert not (tmp_path / "var").exists()


def test_check_config_says_nothing_of_a_sqlite_database_that_is_there(tmp_path):
    write(tmp_path, f'admin_token = "{SECRET}"\n')
    assert run_cli(tmp_path, "migrate").returncode == 0
    result = run_cli(tmp_path, "check-config")
    assert result.returncode == 0 and "no database" not in result.stderr


def test_check_config_lists_destinations_without_their_secrets(tmp_path):
    secret = base64.b64encode(SECRET.encode()).decode()
    write(tmp_path, f'[destinations.audit]\nkind = "webhook"\nurl = "https://example.com/hook"\n'
                    f'secret = "whsec_{secret}"\nrate = "10/s"\n')
    result = run_cli(tmp_path, "check-config")
    assert result.returncode == 0, result.stderr
    assert "destination audit: kind webhook, rate 10/s" in result.stdout
    assert secret not in result.stdout + result.stderr


def problems_of(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(raw, env={})
    return caught.value.problems


def test_a_source_with_a_bad_name_and_an_unknown_provider_reports_both():
    problems = problems_of({"sources": {"bad name!": {"provider": "nosuch"}}})
    assert [problem.split(":")[0] for problem in problems] == ["sources.bad name!", "sources.bad name!.provider"]


def test_a_destination_with_a_bad_name_and_an_unknown_kind_reports_both():
    problems = problems_of({"destinations": {"bad name!": {"kind": "nosuch"}}})
    assert [problem.split(":")[0] for problem in problems] == ["destinations.bad name!",
                                                               "destinations.bad name!.kind"]


def test_a_name_key_in_a_section_is_reported_with_the_other_problems_of_the_section():
    problems = problems_of({"sources": {"g": {"provider": "generic", "name": "x", "tokn": "t"}}})
    assert [problem.split(":")[0] for problem in problems] == ["sources.g.name", "sources.g.tokn"]


@pytest.mark.parametrize("missing, says", [
    ("user", 'a roistat source needs user = "…", the login set in Roistat'),
    ("password", 'a roistat source needs password = "…", the one set in Roistat'),
])
def test_a_roistat_source_without_its_credentials_says_what_they_are(missing, says):
    fields = {"provider": "roistat", "user": "roistat", "password": "roistat-password-0123"}
    del fields[missing]
    problems = problems_of({"sources": {"s": fields}})
    assert len(problems) == 1 and problems[0].startswith(f"sources.s.{missing}: {says}"), problems
    assert "token = md5(user + password)" in problems[0]


@pytest.mark.parametrize("kind, fields, missing", [
    ("hubspot", {}, "token"),
    ("kommo", {"base_url": "https://acme.kommo.com", "key_field_id": 1}, "token"),
    ("pipedrive", {"base_url": "https://acme.pipedrive.com"}, "api_token"),
    ("bitrix24", {}, "webhook_url"),
    ("webhook", {"url": "https://example.com/hook"}, "secret"),
])
def test_a_destination_without_its_credential_says_what_it_is(kind, fields, missing):
    problems = problems_of({"destinations": {"d": {"kind": kind, **fields}}})
    assert len(problems) == 1, problems
    assert problems[0].startswith(f'destinations.d.{missing}: a {kind} destination needs {missing} = "')
    assert "Field required" not in problems[0]


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg://crm:Sup3rSecretPw@db:5432/crm", "postgresql+psycopg://crm:***@db:5432/crm"),
    ("amqp://guest:Sup3rSecretPw@mq:5672//", "amqp://guest:***@mq:5672//"),
])
def test_mask_url_hides_the_password_of_a_user(url, shown):
    assert mask_url(url) == shown


def test_mask_url_hides_a_password_given_without_a_user_name():
    assert mask_url("rediss://:Sup3rSecretRedisPw@127.0.0.1:6380/0") == "rediss://:***@127.0.0.1:6380/0"


def test_mask_url_hides_a_password_holding_a_raw_at_sign():
    assert mask_url("redis://crm:Sup3r@Secret@redis:6379/0") == "redis://crm:***@redis:6379/0"


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg://db/crm?user=crm&password=Sup3rSecretPw", "postgresql+psycopg://db/crm?user=crm&password=***"),
    ("postgresql+psycopg://db/crm?sslpassword=Sup3rSecretPw&sslmode=verify-full",
     "postgresql+psycopg://db/crm?sslpassword=***&sslmode=verify-full"),
    ("redis://redis:6379/0?Pass=Sup3rSecretPw", "redis://redis:6379/0?Pass=***"),
])
def test_mask_url_hides_a_password_in_the_query(url, shown):
    assert mask_url(url) == shown


@pytest.mark.parametrize("url", ["sqlite:///var/crm-ingest.db", "postgresql+psycopg://crm@db/crm", "filesystem://",
                                 "postgresql+psycopg://127.0.0.1:5432/test?options=-csearch_path%3Dt_1"])
def test_mask_url_leaves_a_url_without_a_password_as_it_is(url):
    assert mask_url(url) == url


def test_check_config_never_prints_a_broker_password_given_without_a_user_name(tmp_path):
    write(tmp_path, f'broker_url = "rediss://:{SECRET}@127.0.0.1:6380/0"\n')
    result = run_cli(tmp_path, "check-config")
    assert result.returncode == 0, result.stderr
    assert "broker_url: rediss://:***@127.0.0.1:6380/0" in result.stdout
    assert SECRET not in result.stdout + result.stderr
