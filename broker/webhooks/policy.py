"""Which webhook URLs are accepted, and the headers every delivery carries: langgraph.json's
`webhooks` section, as LangGraph documents it.

A run's (or a cron's) `webhook` is checked once, when it is created (`check`): a URL we
would not call is refused there with 422 naming `webhook`, never found out at delivery.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from broker.config import WebhooksConfig, WebhookUrlPolicy
from broker.errors import Invalid

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class WebhookPolicy:
    url: WebhookUrlPolicy = field(default_factory=WebhookUrlPolicy)
    headers: Mapping[str, str] = field(default_factory=dict)  # resolved
    enabled: bool = True  # http.disable_webhooks: runs still run, nothing is sent

    @classmethod
    def of(
        cls, config: WebhooksConfig, *, enabled: bool = True, env: Mapping[str, str] | None = None
    ) -> WebhookPolicy:
        """The section's policy; header templates resolved from `env` (ConfigError if one
        names a variable outside `env_prefix`, or one that is not set)."""
        headers = config.resolved_headers(os.environ if env is None else env)
        return cls(config.url, headers, enabled)

    def check(self, url: str | None) -> None:
        """Raises Invalid (`webhook: …`) unless the policy lets deliveries go to `url`."""
        if url is None:
            return
        if why := self._refusal(url):
            raise Invalid(f"webhook: {why}")

    def _refusal(self, url: str) -> str | None:
        policy = self.url
        if len(url) > policy.max_url_length:
            return f"longer than {policy.max_url_length} characters (webhooks.url.max_url_length)"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            return f"not a valid URL ({exc})"
        if not parts.scheme and url.startswith("/"):
            return "relative (loopback) webhooks are not supported: give an absolute http(s) URL"
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return "must be an absolute http:// or https:// URL"
        if policy.require_https and parts.scheme != "https":
            return "must use https (webhooks.url.require_https)"
        if policy.allowed_domains and not _allowed_host(parts.hostname, policy.allowed_domains):
            return f"host {parts.hostname!r} is not in webhooks.url.allowed_domains"
        effective = port if port is not None else _DEFAULT_PORTS[parts.scheme]
        if policy.allowed_ports and effective not in policy.allowed_ports:
            return f"port {effective} is not in webhooks.url.allowed_ports"
        return None


def _allowed_host(host: str, allowed: list[str]) -> bool:
    """Exact hosts, and `*.example.com` for its subdomains (not the apex), as LangGraph."""
    host = host.lower().rstrip(".")
    for entry in (a.lower().rstrip(".") for a in allowed):
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and host != entry[2:]:
                return True
        elif host == entry:
            return True
    return False
