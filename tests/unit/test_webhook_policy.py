"""langgraph.json's `webhooks` section: which URLs a run may name, and the headers every
delivery carries (templates resolved at start, inside `env_prefix` only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.config import WebhooksConfig, WebhookUrlPolicy, read_config
from broker.errors import ConfigError, Invalid
from broker.webhooks.policy import WebhookPolicy


def _policy(**url: object) -> WebhookPolicy:
    return WebhookPolicy(WebhookUrlPolicy.model_validate(url))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "absolute http:// or https://"),
        ("ftp://example.com/x", "absolute http:// or https://"),
        ("http://", "absolute http:// or https://"),
        ("/runs/done", "relative (loopback)"),
        ("not a url", "absolute http:// or https://"),
        ("http://example.com:99999/", "not a valid URL"),
    ],
)
def test_what_is_not_an_http_url_is_refused(url: str, why: str) -> None:
    with pytest.raises(Invalid) as refused:
        WebhookPolicy().check(url)
    assert refused.value.detail.startswith("webhook: ") and why in refused.value.detail


def test_any_http_url_passes_without_a_policy() -> None:
    for url in ("http://127.0.0.1:8080/hook", "https://hooks.example.com/x?y=1", None):
        WebhookPolicy().check(url)


def test_allowed_domains_are_exact_or_subdomains() -> None:
    policy = _policy(allowed_domains=["hooks.example.com", "*.corp.com"])
    for url in ("https://hooks.example.com/a", "https://a.corp.com/", "https://x.y.corp.com/"):
        policy.check(url)
    for url in ("https://example.com/", "https://corp.com/", "https://evilcorp.com/"):
        with pytest.raises(Invalid, match="allowed_domains"):
            policy.check(url)


def test_https_ports_and_length() -> None:
    with pytest.raises(Invalid, match="require_https"):
        _policy(require_https=True).check("http://example.com/")
    _policy(require_https=True).check("https://example.com/")
    ports = _policy(allowed_ports=[443, 8443])
    ports.check("https://example.com/")  # 443 by default
    ports.check("https://example.com:8443/")
    with pytest.raises(Invalid, match="port 80 "):
        ports.check("http://example.com/")
    with pytest.raises(Invalid, match="max_url_length"):
        _policy(max_url_length=30).check("https://example.com/" + "x" * 20)


def test_header_templates_resolve_inside_the_prefix() -> None:
    config = WebhooksConfig.model_validate(
        {"headers": {"Authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}", "X-Static": "s"}}
    )
    policy = WebhookPolicy.of(config, env={"LG_WEBHOOK_TOKEN": "abc"})
    assert policy.headers == {"Authorization": "Bearer abc", "X-Static": "s"}
    mixed = WebhooksConfig.model_validate(
        {"env_prefix": "HOOK_", "headers": {"X": "${{env.HOOK_A}}-${{ env.HOOK_B }}"}}
    )
    assert WebhookPolicy.of(mixed, env={"HOOK_A": "1", "HOOK_B": "2"}).headers == {"X": "1-2"}


def test_header_templates_outside_the_prefix_or_unset_stop_the_process() -> None:
    leaking = WebhooksConfig.model_validate({"headers": {"X": "${{ env.DATABASE_URI }}"}})
    with pytest.raises(ConfigError, match="env_prefix"):
        WebhookPolicy.of(leaking, env={"DATABASE_URI": "postgres://secret"})
    unset = WebhooksConfig.model_validate({"headers": {"X": "${{ env.LG_WEBHOOK_NOPE }}"}})
    with pytest.raises(ConfigError, match="not set"):
        WebhookPolicy.of(unset, env={})


def _config(tmp_path: Path, **sections: object) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"g": "./g.py:graph"}, **sections}))
    return path


def test_the_sections_are_read_typed(tmp_path: Path) -> None:
    webhooks = {"url": {"require_https": True, "allowed_ports": [443]}, "headers": {"X": "y"}}
    ttl = {"strategy": "keep_latest", "default_ttl": 30, "sweep_interval_minutes": 2}
    project = read_config(_config(tmp_path, webhooks=webhooks, checkpointer={"ttl": ttl}))
    assert project.webhooks.url.require_https and project.webhooks.url.allowed_ports == [443]
    assert project.thread_ttl is not None and project.thread_ttl.strategy == "keep_latest"
    assert (project.thread_ttl.default_ttl, project.thread_ttl.sweep_interval_minutes) == (30, 2)


@pytest.mark.parametrize(
    ("sections", "words"),
    [
        ({"checkpointer": {"ttl": {"strategy": "archive"}}}, "`checkpointer.ttl.strategy`"),
        ({"checkpointer": {"ttl": {"default_ttl": -1}}}, "`checkpointer.ttl.default_ttl`"),
        ({"webhooks": {"headers": {"X": "${{ env.HOME }}"}}}, "`webhooks.headers.X`"),
        ({"webhooks": {"url": {"allowed_ports": ["x"]}}}, "`webhooks.url.allowed_ports.0`"),
    ],
)
def test_bad_sections_stop_the_process_with_one_line(
    tmp_path: Path, sections: dict[str, object], words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        read_config(_config(tmp_path, **sections))
    assert words in caught.value.detail and "\n" not in caught.value.detail
