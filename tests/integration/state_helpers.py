"""A gateway with a SQLite store, an admin key and a fake OpenAI upstream, driven over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tollgate.config import Settings

ADMIN_KEY = "admin-secret-for-tests"
AUDIT_KEY = "audit-hmac-secret-for-tests"
MESSAGES = [{"role": "user", "content": "hello there"}]


def gateway_settings(fake: FakeOpenAI, **overrides: Any) -> Settings:
    """The state tests' gateway: OpenAI on the fake, admin and audit keys, no key cache, a 50-token cap."""
    values: dict[str, Any] = {
        "default_provider": "openai",
        "openai_api_key": "sk-upstream-secret",
        "openai_base_url": f"{fake.url}/v1",  # type: ignore[attr-defined]
        "admin_key": ADMIN_KEY,
        "audit_key": AUDIT_KEY,
        "key_cache_seconds": 0,
        "default_max_tokens": 50,
    }
    return Settings(**(values | overrides))


@dataclass
class Gateway:
    server: ServerThread
    upstream: FakeOpenAI

    @property
    def url(self) -> str:
        return self.server.url

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        return httpx.request(method, f"{self.url}/admin{path}", headers=headers, timeout=10, **kwargs)

    def new_key(self, tenant: str, **fields: Any) -> str:
        response = self.admin("POST", "/keys", json={"tenant": tenant, **fields})
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    def set_budget(self, tenant: str, pool: str, tokens: int | None) -> dict[str, Any]:
        response = self.admin("PUT", f"/budgets/{tenant}/{pool}", json={"tokens": tokens})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def chat(self, key: str | None, body: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        payload = {"model": "gpt-4o-mini", "messages": MESSAGES, **(body or {})}
        return httpx.post(
            f"{self.url}/v1/chat/completions", json=payload, headers=headers, timeout=20, **kwargs
        )

    def get(self, key: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"x-api-key": key}, timeout=20, **kwargs)
