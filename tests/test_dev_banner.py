"""What `crm-ingest dev` prints before it starts: URLs each provider can reach, the admin curl line, and a
--public-url checked before anything starts."""
from __future__ import annotations

import pytest

from ingest.settings import load_settings
from workers.dev import banner_lines, exit_status, run_dev
from workers.starter import local_base_url, public_base_url, starter_config_text

PUBLIC_URL = "https://hooks.example.com"


@pytest.fixture
def every_provider(tmp_path):
    """The settings of the starter config: one source of each provider."""
    path = tmp_path / "crm-ingest.toml"
    path.write_text(starter_config_text())
    return load_settings(path)


@pytest.fixture
def generic_only(tmp_path):
    path = tmp_path / "crm-ingest.toml"
    path.write_text('[sources.g]\nprovider = "generic"\ntoken = "dev-generic-token-0123456789"\n')
    return load_settings(path)


def _provider_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("  ")]


@pytest.mark.parametrize("host, url", [("0.0.0.0", "http://127.0.0.1:8000"), ("", "http://127.0.0.1:8000"),
                                       ("::", "http://[::1]:8000")])
def test_a_wildcard_bind_is_printed_as_the_loopback(host, url):
    assert local_base_url(host, 8000) == url


def test_an_ipv6_address_is_put_in_brackets():
    assert local_base_url("fe80::1", 8000) == "http://[fe80::1]:8000"


def test_a_wildcard_bind_is_named_as_every_interface_not_as_an_address(every_provider):
    lines = banner_lines(every_provider, "0.0.0.0", 8000)
    assert "serving on port 8000 of every interface (http://127.0.0.1:8000 from this machine)" in lines
    assert not any("0.0.0.0" in line for line in lines)


def test_without_a_public_url_the_hosted_providers_are_told_what_they_need(every_provider):
    note = next(line for line in banner_lines(every_provider, "127.0.0.1", 8000) if "call from the internet" in line)
    assert note.startswith("JivoChat, LiveChat, Rocket.Chat Cloud and Roistat call from the internet and cannot "
                           "reach http://127.0.0.1:8000")
    assert "public https address (a reverse proxy or a tunnel)" in note
    assert "--public-url https://<that address>" in note


def test_providers_that_may_be_on_this_machine_get_no_such_note(generic_only):
    assert not any("call from the internet" in line for line in banner_lines(generic_only, "127.0.0.1", 8000))


def test_the_public_url_is_the_base_of_every_provider_url(every_provider):
    lines = _provider_lines(banner_lines(every_provider, "127.0.0.1", 8000, PUBLIC_URL))
    assert len(lines) == 5
    assert all(f"{PUBLIC_URL}/hooks/" in line and "127.0.0.1" not in line for line in lines)


def test_with_a_public_url_the_hosted_providers_note_is_left_out(every_provider):
    assert not any("call from the internet" in line
                   for line in banner_lines(every_provider, "127.0.0.1", 8000, PUBLIC_URL))


def test_the_curl_line_stays_on_the_local_address_with_a_public_url(every_provider):
    curl = next(line for line in banner_lines(every_provider, "0.0.0.0", 8000, PUBLIC_URL)
                if line.startswith("admin API:"))
    assert curl.endswith(" http://127.0.0.1:8000/api/events")


@pytest.mark.parametrize("given, base", [("https://hooks.example.com/", "https://hooks.example.com"),
                                         ("http://203.0.113.7:8080", "http://203.0.113.7:8080"),
                                         (" https://example.com/crm-ingest/ ", "https://example.com/crm-ingest")])
def test_a_public_url_is_kept_with_its_port_and_path_less_a_trailing_slash(given, base):
    assert public_base_url(given) == base


@pytest.mark.parametrize("given", ["hooks.example.com", "ftp://hooks.example.com", "https://", "https:///hooks",
                                   "https://hooks.example.com:port", "https://hooks.example.com/?source=x",
                                   "https://hooks.example.com/#top", "https://user:secret@hooks.example.com",
                                   "https://hooks.example.com/hooks/generic-main"])
def test_a_public_url_that_would_not_make_working_urls_is_refused(given):
    with pytest.raises(ValueError):
        public_base_url(given)


def test_dev_with_a_bad_public_url_says_so_and_starts_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_dev("127.0.0.1", 8000, public_url="hooks.example.com") == 1
    assert capsys.readouterr().err.startswith("--public-url: 'hooks.example.com' is not an http(s) address")
    assert list(tmp_path.iterdir()) == []  # no starter config, no database


def test_the_dev_command_takes_public_url_as_an_option(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from workers.cli import main

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["dev", "--public-url", "hooks.example.com"])
    assert result.exit_code == 1
    assert "--public-url: 'hooks.example.com' is not an http(s) address" in result.output


@pytest.mark.parametrize("returncode, status", [(-9, 137), (-15, 143), (3, 3), (0, 1)])
def test_dev_exits_128_plus_the_signal_that_killed_a_child_or_the_childs_own_failing_status(returncode, status):
    assert exit_status(returncode) == status
