"""What the console's browser tests run against: ``tollgate serve`` (a real process) in front of a fake
OpenAI upstream, a SQLite store seeded with two earlier days of spend, and headless Chromium from the
machine's package manager (Debian's ``chromium`` + ``chromium-driver``, installed by scripts/test.sh),
driven by selenium. Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import OWN_ENV_PREFIXES
from tests.fakes.openai_upstream import FakeOpenAI
from tests.ports import free_port

ADMIN_KEY = "console-admin-key-for-tests"
AUDIT_KEY = "console-audit-hmac-for-tests"
SERVE_LIMIT_S = 900  # the gateway process ends by itself even if this test run is killed
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
# Earlier days of spend for tenant "acme" (micro-USD), written into the audit chain before the gateway starts.
SEEDED = {6: [1_250_000, 500_000], 4: [2_000_000]}  # days ago -> the costs of that day's requests


def day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def seed_spend(db: Path) -> None:
    """Chain a few earlier requests of tenant acme into the store, as the ledger would have."""
    from tollgate import audit, rollups
    from tollgate.store.audit_base import AuditEntry
    from tollgate.store.sqlite import SQLiteStore

    async def run() -> None:
        store = SQLiteStore(str(db))
        await store.init_schema()
        try:
            for days_ago, costs in sorted(SEEDED.items(), reverse=True):
                for n, cost in enumerate(costs):
                    at = f"{day(days_ago)}T10:0{n}:00.000000Z"
                    entry = AuditEntry(
                        tenant="acme",
                        seq=0,
                        at=at,
                        request_id=f"seed-{days_ago}-{n}",
                        key_id="seed",
                        provider="openai",
                        model="gpt-4o",
                        status="ok",
                        prompt_tokens=100,
                        completion_tokens=50,
                        cost_micro_usd=cost,
                        request_sha256="0" * 64,
                        response_sha256="0" * 64,
                        prev_hash="",
                        hash="",
                    )
                    written = await audit.append(store, entry, AUDIT_KEY.encode())
                    await store.add_rollup(rollups.change_of(written))  # the ledger's cost rollup
        finally:
            await store.aclose()

    asyncio.run(run())


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    upstream: FakeOpenAI

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        return httpx.request(method, f"{self.url}/admin{path}", headers=headers, timeout=10, **kwargs)

    def new_key(self, tenant: str, **fields: Any) -> str:
        response = self.admin("POST", "/keys", json={"tenant": tenant, **fields})
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    def get(self, key: str, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"authorization": f"Bearer {key}"}, timeout=10)

    def chat(self, key: str) -> httpx.Response:
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"authorization": f"Bearer {key}"}
        return httpx.post(f"{self.url}/v1/chat/completions", json=body, headers=headers, timeout=20)


def _serve_env(db: Path, upstream: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_ENV_PREFIXES)}
    layer = str(Path(__file__).resolve().parents[2] / "layers" / "tollgate")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (layer, env.get("PYTHONPATH")) if p)
    env.update(
        TOLLGATE_SQLITE_PATH=str(db),
        TOLLGATE_ADMIN_KEY=ADMIN_KEY,
        TOLLGATE_AUDIT_KEY=AUDIT_KEY,
        TOLLGATE_KEY_CACHE_SECONDS="0",  # a revoked key is refused at once
        TOLLGATE_DEFAULT_PROVIDER="openai",
        OPENAI_API_KEY="sk-fake-upstream",
        OPENAI_BASE_URL=f"{upstream}/v1",
        OPENROUTER_API_KEY="sk-fake-upstream",
        OPENROUTER_BASE_URL=f"{upstream}/v1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def start_gateway(tmp: Path, upstream: FakeOpenAI, upstream_url: str) -> Gateway:
    """``tollgate serve`` on a free loopback port (the real CLI, in its own process)."""
    db = tmp / "console.db"
    seed_spend(db)
    port = free_port()
    command = [sys.executable, "-c", "import sys; from tollgate.cli import main; sys.exit(main())"]
    command += ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if shutil.which("timeout"):
        command = ["timeout", str(SERVE_LIMIT_S), *command]
    log = tmp / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            env=_serve_env(db, upstream_url),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    gateway = Gateway(f"http://127.0.0.1:{port}", process, log, upstream)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"tollgate serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{gateway.url}/health", timeout=1).status_code == 200:
                return gateway
        except httpx.HTTPError:
            time.sleep(0.1)
    stop(process)
    pytest.fail(f"tollgate serve was not healthy in 30 s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def browser_paths() -> tuple[str, str]:
    browser = next((shutil.which(name) for name in CHROMIUM if shutil.which(name)), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail(
            "headless Chromium and chromedriver are needed: apt-get install chromium chromium-driver "
            "(scripts/test.sh installs them)"
        )
    return browser, driver


def start_browser() -> Any:
    """Headless Chromium with its performance (network) and browser (console) logs recorded."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-extensions",
        "--no-default-browser-check",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


@dataclass
class BrowserLog:
    """Every URL the page requested and every console message, drained from the driver as we go."""

    urls: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def drain(self, driver: Any) -> None:
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self.urls.append(message["params"]["request"]["url"])
        self.console.extend(str(entry.get("message")) for entry in driver.get_log("browser"))

    def foreign(self, origin: str) -> list[str]:
        """Requests to anything but the gateway's own origin (data: URLs stay in the page)."""
        own = urlsplit(origin)
        return [u for u in self.urls if not u.startswith("data:") and urlsplit(u)[:2] != own[:2]]
