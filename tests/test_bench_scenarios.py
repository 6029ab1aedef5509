"""The ingress benchmark's scenarios send what they say: jivo-known's measured chats come from returning visitors."""
from __future__ import annotations

from bench.ingress import SCENARIOS, SOURCE
from bench.services import Services
from ingest.app import create_app
from ingest.runtime import Runtime
from ingest.settings import load_settings


def test_jivo_known_chats_after_the_warm_up_are_answered_with_the_visitors_card(database_url, tmp_path):
    scenario = SCENARIOS["jivo-known"]()
    services = Services(database_url, "filesystem://", "test-bench:")  # the embedded broker: no server needed
    config = services.write_config(tmp_path / "crm-ingest.toml", tmp_path / "data", {SOURCE: scenario.source})
    runtime = Runtime(load_settings(config))
    client = create_app(runtime).test_client()
    headers = scenario.headers
    try:
        warm_up = [client.post(scenario.hooks_path, data=scenario.body(n, "run"), headers=headers) for n in (0, 1)]
        assert [response.get_json() for response in warm_up] == [{"result": "ok"}] * 2
        scenario.after_warmup(config)
        again = client.post(scenario.hooks_path, data=scenario.body(200, "run"), headers=headers).get_json()
    finally:
        runtime.close()
    assert again["contact_info"]["email"] == "v0-run@example.com"
