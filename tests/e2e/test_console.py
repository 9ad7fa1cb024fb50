"""The web console (/ui) in headless Chromium against ``tollgate serve`` with a fake upstream.

Screenshots of every page land in the test's tmp directory (the path is printed; ``pytest -s`` shows it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.console_env import (
    ADMIN_KEY,
    SEEDED,
    BrowserLog,
    Gateway,
    day,
    start_browser,
    start_gateway,
    stop,
)
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread

pytestmark = pytest.mark.slow

MODEL = "openai/gpt-4o-mini"
WAIT_S = 15.0


@dataclass
class Console:
    gateway: Gateway
    driver: Any
    log: BrowserLog
    shots: Path
    keys: dict[str, str]

    def open(self) -> None:
        """A fresh page with nothing in sessionStorage (logged out)."""
        self.driver.get(f"{self.gateway.url}/ui")
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.get(f"{self.gateway.url}/ui")
        self.wait(lambda: self.visible("login-key"))

    def find(self, testid: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')

    def all(self, testid: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]'))

    def visible(self, testid: str) -> bool:
        found = self.all(testid)
        return bool(found) and found[0].is_displayed()

    def wait(self, condition: Callable[[], Any], timeout: float = WAIT_S, what: str = "condition") -> Any:
        from selenium.common.exceptions import StaleElementReferenceException

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = condition()
            except StaleElementReferenceException:  # the page re-rendered under us: look again
                value = None
            if value:
                return value
            time.sleep(0.05)
        self.shot(f"timeout-{re.sub(r'[^a-z0-9]+', '-', what.lower())}")
        pytest.fail(f"timed out waiting for {what}")

    def login(self, key: str) -> None:
        self.open()
        self.find("login-key").send_keys(key)
        self.find("login-submit").click()

    def send(self, prompt: str) -> None:
        from selenium.webdriver.support.ui import Select

        self.wait(lambda: MODEL in [o.text for o in Select(self.find("model-select")).options], what="models")
        Select(self.find("model-select")).select_by_visible_text(MODEL)
        self.find("prompt-input").send_keys(prompt)
        self.find("send-button").click()

    def meta_done(self, n: int) -> str:
        """The metadata line of answer n (from 1), once that answer has ended."""

        def done() -> str | None:
            metas = self.all("message-meta")
            text = metas[n - 1].text if len(metas) >= n else ""
            return text if text and "streaming" not in text else None

        return str(self.wait(done, what="answer metadata"))

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def phone(self, name: str) -> None:
        """At a phone's width the page does not scroll sideways (wide tables scroll in their own box)."""
        self.driver.set_window_size(390, 844)
        try:
            self.wait(
                lambda: self.driver.execute_script(
                    "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
                ),
                what=f"{name} to fit a phone's width",
            )
            self.shot(name)
        finally:
            self.driver.set_window_size(1280, 900)

    def banner(self) -> str:
        return str(
            self.wait(
                lambda: self.visible("error-banner") and self.find("error-banner").text,
                what="the error banner",
            )
        )


def audit_entries(ui: Console) -> list[dict[str, Any]]:
    return list(ui.gateway.get(ui.keys["acme"], "/v1/audit?limit=1000").json()["entries"])


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    upstream = FakeOpenAI()
    with ServerThread(upstream) as upstream_server:
        gateway = start_gateway(tmp_path_factory.mktemp("console-gateway"), upstream, upstream_server.url)
        driver = None
        try:
            keys = {
                "acme": gateway.new_key("acme", name="browser"),
                "broke": gateway.new_key("broke"),
                "narrow": gateway.new_key("narrow", models=["openrouter/*"]),
            }
            assert (
                gateway.admin(
                    "PUT", "/budgets/acme/default", json={"tokens": 1_000_000, "usd": 25, "period": "monthly"}
                ).status_code
                == 200
            )
            assert gateway.admin("PUT", "/budgets/broke/default", json={"tokens": 5}).status_code == 200
            shots = tmp_path_factory.mktemp("console-screenshots")
            print(f"\nconsole screenshots: {shots}")
            driver = start_browser()
            yield Console(gateway, driver, BrowserLog(), shots, keys)
        finally:
            if driver is not None:
                driver.quit()
            stop(gateway.process)


@pytest.fixture
def ui(console: Console) -> Iterator[Console]:
    """Each test: the page's requests all went to the gateway's own origin and no CSP violation was logged."""
    yield console
    console.log.drain(console.driver)
    assert f"{console.gateway.url}/ui/app.js" in console.log.urls  # the log does record the page's requests
    assert console.log.foreign(console.gateway.url) == []
    secrets = [*console.keys.values(), ADMIN_KEY]  # a key goes in the Authorization header only
    assert [u for u in console.log.urls if any(k in u for k in secrets)] == []
    assert console.driver.execute_script("return document.cookie") == ""
    assert [m for m in console.log.console if "Content Security Policy" in m or "Refused to" in m] == []


def test_a_wrong_key_shows_an_error_not_a_crash(ui: Console) -> None:
    ui.login("tg-this-key-does-not-exist")
    assert "not accepted" in ui.banner()
    assert ui.visible("login-key") and not ui.visible("nav-chat")
    ui.shot("login-wrong-key")


def test_chat_streams_the_answer_in_pieces_with_tokens_cost_and_provider(ui: Console) -> None:
    pieces = ["Hello", " there", ", streamed", " in", " pieces"]
    ui.gateway.upstream.enqueue(Script(texts=pieces, delay=0.35))
    ui.login(ui.keys["acme"])
    ui.wait(lambda: ui.visible("nav-chat") and ui.visible("nav-usage"), what="the tenant pages")
    assert not ui.visible("nav-admin")
    ui.driver.find_element("id", "chat-system").send_keys("Be brief.")
    ui.driver.find_element("id", "chat-max-tokens").send_keys("64")
    ui.send("say hello")
    seen: list[str] = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not (seen and ui.find("send-button").is_enabled()):
        answers = ui.all("message-assistant")
        text = answers[-1].text if answers else ""
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        time.sleep(0.05)
    final = ui.all("message-assistant")[-1].text
    assert final == "Hello there, streamed in pieces"
    assert len(seen) >= 3, seen  # it grew while streaming, not all at once
    meta = ui.meta_done(1)
    assert "11 prompt + 5 completion = 16 tokens" in meta
    assert "provider openai" in meta
    entry = audit_entries(ui)[-1]
    assert f"cost ${entry['cost_micro_usd'] / 1e6:.6f}" in meta
    body = ui.gateway.upstream.requests[-1][2]
    assert body["stream"] is True and body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["max_completion_tokens"] == 64  # what the gateway sends OpenAI for max_tokens
    ui.shot("chat")
    ui.phone("chat-phone")


def test_stop_aborts_a_slow_stream(ui: Console) -> None:
    ui.gateway.upstream.enqueue(Script(texts=[f"word{n} " for n in range(30)], delay=0.15))
    ui.login(ui.keys["acme"])
    entries = len(audit_entries(ui))
    ui.send("talk slowly")
    ui.wait(
        lambda: ui.all("message-assistant") and "word2" in ui.all("message-assistant")[-1].text,
        what="the first words",
    )
    ui.find("stop-button").click()
    assert "stopped" in ui.meta_done(1)
    stopped_at = ui.all("message-assistant")[-1].text
    time.sleep(1.0)
    assert ui.all("message-assistant")[-1].text == stopped_at  # nothing more arrived
    assert "word29" not in stopped_at
    assert ui.find("send-button").is_enabled() and not ui.find("stop-button").is_enabled()
    ui.shot("chat-stopped")
    # the gateway saw the disconnect and still settled and audited the request
    last = ui.wait(lambda: (found := audit_entries(ui))[entries:] and found[-1], what="the audit entry")
    assert last["status"] == "client_closed"


def test_model_output_renders_as_text_never_as_html(ui: Console) -> None:
    payload = [
        '**bold** <img src=x onerror="window.pwned=1">',
        " and <script>window.pwned=2</script> `x<b>`",
        "\n\n[click](javascript:window.pwned=3) [docs](https://example.com/a)",
    ]
    ui.gateway.upstream.enqueue(Script(texts=payload))
    ui.login(ui.keys["acme"])
    ui.send("inject something")
    ui.meta_done(1)
    answer = ui.all("message-assistant")[-1]
    assert '<img src=x onerror="window.pwned=1">' in answer.text
    assert "<script>window.pwned=2</script>" in answer.text
    assert answer.find_elements("css selector", "img, script, b") == []
    assert answer.find_element("css selector", "strong").text == "bold"
    assert answer.find_element("css selector", "code").text == "x<b>"
    links = answer.find_elements("css selector", "a")
    assert [a.get_attribute("href") for a in links] == ["https://example.com/a"]  # javascript: stays text
    assert links[0].get_attribute("rel") == "noopener noreferrer"
    assert "[click](javascript:window.pwned=3)" in answer.text
    assert ui.driver.execute_script("return window.pwned === undefined")
    ui.shot("chat-xss-as-text")


def test_an_exhausted_budget_is_explained(ui: Console) -> None:
    ui.login(ui.keys["broke"])
    ui.send("anything at all")
    said = ui.banner()
    assert "Budget exhausted: the token budget of pool default has run out" in said
    assert "it does not reset (no period)" in said
    ui.shot("chat-budget-exhausted")


def test_a_gateway_rate_limit_is_explained_with_its_retry_time(ui: Console) -> None:
    key = ui.gateway.new_key("hurried")
    limit = ui.gateway.admin("PUT", "/limits/hurried", json={"rpm": 1})
    assert limit.status_code == 200, limit.text
    ui.login(key)
    ui.wait(lambda: ui.visible("prompt-input"), what="the chat page")
    for _ in range(2):  # a new minute may begin between using up the limit and the browser's send: once more
        while ui.gateway.chat(key).status_code == 200:
            pass
        sent = len(ui.all("message-meta"))
        ui.send("one too many")
        if "failed (429)" in ui.meta_done(sent + 1):
            break
    said = ui.banner()
    assert said.startswith("Rate limit reached: the gateway's requests-per-minute or tokens-per-minute limit")
    assert re.search(r"Try again in \d+ s\.", said), said
    assert "rate limit of 1 requests per minute reached for tenant hurried" in said
    ui.shot("chat-gateway-rate-limited")


def test_a_key_sees_only_its_models_and_a_forbidden_one_is_explained(ui: Console) -> None:
    from selenium.webdriver.support.ui import Select

    ui.login(ui.keys["narrow"])
    ui.wait(lambda: Select(ui.find("model-select")).options, what="models")
    assert [o.text for o in Select(ui.find("model-select")).options] == ["openrouter/openai/gpt-4o-mini"]
    ui.driver.execute_script(  # as if the list were stale: the gateway still refuses the model
        "const o = document.createElement('option'); o.value = o.textContent = arguments[0];"
        "document.querySelector('[data-testid=model-select]').append(o)",
        MODEL,
    )
    ui.send("not my model")
    assert "may not" in ui.banner()
    assert "failed" in ui.meta_done(1)


def test_upstream_rate_limits_and_broken_streams_are_explained(ui: Console) -> None:
    ui.gateway.upstream.enqueue(
        Script(status=429, error_message="slow down", headers={"retry-after": "7"}),
        Script(texts=["partial", " answer", " never", " finished"], fail_after=2, error_message="boom"),
    )
    ui.login(ui.keys["acme"])
    ui.send("first")
    assert "Rate limit reached" in ui.banner()
    ui.shot("chat-rate-limited")
    ui.send("second")
    ui.wait(lambda: "cut off" in ui.find("error-banner").text, what="the cut-off stream explained")
    assert ui.all("message-assistant")[-1].text == "partial answer"


def test_a_session_id_lets_the_gateway_keep_the_conversation(ui: Console) -> None:
    ui.gateway.upstream.enqueue(Script(texts=["first answer"]), Script(texts=["second answer"]))
    ui.login(ui.keys["acme"])
    ui.wait(lambda: ui.visible("prompt-input"), what="the chat page")  # it renders after the login answers
    ui.driver.find_element("id", "chat-session").send_keys("console-session-1")
    ui.send("one")
    ui.meta_done(1)
    ui.send("two")
    ui.meta_done(2)
    sent = ui.gateway.upstream.requests[-1][2]["messages"]
    assert [m["content"] for m in sent] == ["one", "first answer", "two"]  # history from the gateway's store


def test_usage_shows_day_totals_budgets_requests_and_the_audit_chain(ui: Console) -> None:
    ui.login(ui.keys["acme"])
    ui.wait(lambda: ui.visible("nav-usage"), what="the usage link")
    ui.find("nav-usage").click()
    ui.wait(lambda: ui.all("audit-status"), what="the usage page")
    chart = ui.find("spend-chart")
    ui.wait(lambda: chart.find_elements("css selector", "canvas"), what="the drawn chart")
    days = {row.get_attribute("data-day"): row.text for row in ui.all("spend-day")}
    for days_ago, costs in SEEDED.items():
        assert f"${sum(costs) / 1e6:.6f}" in days[day(days_ago)]
    costs = ui.gateway.get(ui.keys["acme"], "/v1/costs?group_by=day").json()
    today = next(g for g in costs["groups"] if g["group"] == day(0))
    assert f"${today['cost_micro_usd'] / 1e6:.6f}" in days[day(0)]
    assert len(days) == len(costs["groups"])
    rows = {row.get_attribute("data-kind"): row for row in ui.all("budget-row")}
    listed = {b["kind"]: b for b in ui.gateway.get(ui.keys["acme"], "/v1/budgets").json()["budgets"]}
    assert set(rows) == set(listed) == {"tokens", "usd"}  # the pool's token capacity and its USD budget
    assert f"{listed['tokens']['spent']:,}" in rows["tokens"].text and "no period" in rows["tokens"].text
    remaining = listed["usd"]["remaining"]
    assert f"${remaining / 1e6:.6f}" in rows["usd"].text and "monthly, resets at" in rows["usd"].text
    audit = ui.gateway.get(ui.keys["acme"], "/v1/audit?limit=1000").json()
    assert len(ui.all("request-row")) == min(len(audit["entries"]), 20)
    assert "verified" in ui.find("audit-status").text
    assert ui.find("rate-limits").text == "No rate limits."
    models = ui.gateway.get(ui.keys["acme"], "/v1/costs?group_by=model").json()["groups"]
    shown = ui.driver.find_element("id", "usage-models").find_element("xpath", "..").text
    for group in models:  # tokens per model
        assert f"{group['group']} {group['requests']:,} {group['prompt_tokens']:,}" in shown, shown
    ui.shot("usage")
    ui.phone("usage-phone")


def test_admin_creates_a_key_that_works_then_revokes_it(ui: Console) -> None:
    ui.login(ADMIN_KEY)
    ui.wait(lambda: ui.visible("nav-admin"), what="the admin link")
    assert not ui.visible("nav-chat")
    ui.wait(lambda: ui.all("provider-row"), what="provider health")
    ui.wait(lambda: ui.all("tenant-row"), what="the tenants")
    groups = ui.gateway.admin("GET", "/costs", params={"group_by": "tenant"}).json()["groups"]
    acme = next(g["cost_micro_usd"] for g in groups if g["group"] == "acme")  # its keys', revoked or gone
    row = next(r for r in ui.all("tenant-row") if r.text.startswith("acme "))
    assert row.text.endswith(f"${acme / 1e6:.6f}"), row.text  # the tenant's spend
    names = [row.text.split()[0] for row in ui.all("provider-row")]
    assert {"openai", "openrouter"} <= set(names)
    before = len(ui.all("key-row"))
    ui.find("admin-new-key-tenant").send_keys("newco")
    ui.find("admin-create-key").click()
    secret = ui.wait(
        lambda: ui.visible("admin-new-key-secret") and ui.find("admin-new-key-secret").text,
        what="the new key",
    )
    assert secret.startswith("tg-")
    ui.wait(lambda: len(ui.all("key-row")) == before + 1, what="the new key's row")
    copy = ui.driver.find_element("xpath", '//button[text()="Copy"]')
    copy.click()
    ui.wait(lambda: copy.text != "Copy", what="the copy button's answer")
    ui.shot("admin-new-key")
    ui.driver.find_element("id", "admin-budget-tenant").send_keys("newco")
    ui.driver.find_element("id", "admin-budget-tokens").send_keys("4321")
    ui.driver.find_element("xpath", '//button[text()="Set budget"]').click()

    def pools() -> list[dict[str, Any]]:
        return list(ui.gateway.admin("GET", "/budgets", params={"tenant": "newco"}).json()["pools"])

    ui.wait(lambda: pools() and pools()[0]["capacity"] == 4321, what="the budget set")
    ui.wait(
        lambda: "4,321" in ui.driver.find_element("id", "admin-budgets").find_element("xpath", "..").text,
        what="the budget shown",
    )
    assert ui.gateway.chat(secret).status_code == 200
    ui.driver.refresh()
    ui.wait(lambda: ui.all("key-row"), what="the keys after a reload")
    assert not ui.all("admin-new-key-secret")  # shown once
    row = next(r for r in ui.all("key-row") if "newco" in r.text)
    row.find_element("css selector", "button").click()
    ui.wait(lambda: any("newco" in r.text and "revoked" in r.text for r in ui.all("key-row")), what="revoked")
    assert ui.gateway.chat(secret).status_code == 401
    ui.shot("admin")
    ui.phone("admin-phone")


def test_keyboard_alone_logs_in_chats_and_navigates(ui: Console) -> None:
    from selenium.webdriver.common.keys import Keys

    ui.gateway.upstream.enqueue(Script(texts=["typed", " answer"]))
    ui.open()
    ui.find("login-key").send_keys(ui.keys["acme"] + Keys.ENTER)
    ui.wait(lambda: ui.visible("prompt-input"), what="the chat page")
    ui.wait(lambda: ui.find("model-select").get_attribute("value"), what="a model")
    ui.find("prompt-input").send_keys("no mouse" + Keys.ENTER)
    ui.meta_done(1)
    assert ui.all("message-assistant")[-1].text == "typed answer"
    ui.find("nav-usage").send_keys(Keys.ENTER)
    ui.wait(lambda: ui.visible("audit-status"), what="the usage page")


def test_dark_theme(ui: Console) -> None:
    ui.login(ui.keys["acme"])
    ui.wait(lambda: ui.visible("nav-usage"), what="the usage link")
    ui.find("nav-usage").click()
    ui.wait(lambda: ui.all("audit-status"), what="the usage page")
    theme = ui.driver.find_element("id", "theme")
    while theme.text != "Theme: dark":
        theme.click()
    background = ui.driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
    assert red + green + blue < 150, background
    ui.shot("usage-dark")
    while theme.text != "Theme: light":
        theme.click()
    background = ui.driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert sum(int(v) for v in re.findall(r"\d+", background)[:3]) > 600, background
    ui.shot("usage-light")
    while theme.text != "Theme: auto":
        theme.click()


def test_admin_sets_rate_limits_and_the_key_sees_them_on_usage(ui: Console) -> None:
    key = ui.gateway.new_key("limited")

    def limits() -> list[dict[str, Any]]:
        return list(ui.gateway.admin("GET", "/limits", params={"tenant": "limited"}).json()["limits"])

    ui.login(ADMIN_KEY)
    ui.wait(lambda: ui.visible("admin-limit-tenant"), what="the rate-limit form")
    ui.find("admin-limit-tenant").send_keys("limited")
    ui.find("admin-limit-rpm").send_keys("0")
    ui.find("admin-set-limit").click()
    assert "RPM must be a whole number of at least 1" in ui.banner()
    assert limits() == []  # nothing was written
    ui.find("admin-limit-rpm").clear()
    ui.find("admin-limit-rpm").send_keys("3")
    ui.find("admin-limit-tpm").send_keys("50000")
    ui.find("admin-set-limit").click()
    ui.wait(lambda: limits() == [{"tenant": "limited", "key_id": None, "rpm": 3, "tpm": 50000}], what="set")
    ui.wait(
        lambda: any("limited" in r.text and "50,000" in r.text for r in ui.all("admin-limit-row")),
        what="the limit's row",
    )
    ui.find("admin-limit-key").send_keys("key_0000000000000000")  # not a key of the tenant: explained
    ui.find("admin-set-limit").click()
    assert "Not found" in ui.banner() and "has no key" in ui.banner()
    ui.shot("admin-limits")
    assert ui.gateway.chat(key).status_code == 200
    ui.login(key)
    ui.wait(lambda: ui.visible("nav-usage"), what="the usage link")
    ui.find("nav-usage").click()
    rows = ui.wait(lambda: ui.all("limit-row"), what="the limit rows")
    texts = [r.text for r in rows]
    assert len(texts) == 2
    assert texts[0].startswith("Requests per minute (tenant) 3")
    assert texts[1].startswith("Tokens per minute (tenant) 50,000")
    remaining = int(rows[0].find_elements("css selector", "td")[2].text)
    assert remaining in (2, 3)  # the chat above counted (2), unless a new minute began since (3)
    ui.shot("usage-limits")


def _in_zone(instant: str, zone: str) -> str:
    """How the console writes a period's end: the instant in the budget's own timezone."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    local = datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} {zone}"


def test_admin_sets_usd_budgets_and_the_key_sees_its_period_on_usage(ui: Console) -> None:
    from selenium.webdriver.support.ui import Select

    created = ui.gateway.admin("POST", "/keys", json={"tenant": "usdco"}).json()
    key, key_id = created["key"], created["key_id"]

    def budgets() -> list[dict[str, Any]]:  # the USD ones (the key's pool exists since the key does)
        found = ui.gateway.admin("GET", "/budgets", params={"tenant": "usdco"}).json()["budgets"]
        return [b for b in found if b["kind"] == "usd"]

    def admin_row(scope: str, kind: str) -> Any:
        return next(
            (
                r
                for r in ui.all("admin-budget-row")
                if r.get_attribute("data-tenant") == "usdco"
                and r.get_attribute("data-scope") == scope
                and r.get_attribute("data-kind") == kind
            ),
            None,
        )

    ui.login(ADMIN_KEY)
    ui.wait(lambda: ui.visible("admin-budget-scope"), what="the budget form")
    Select(ui.find("admin-budget-scope")).select_by_value("key")
    ui.wait(lambda: ui.visible("admin-budget-key") and not ui.visible("admin-budget-tenant"), what="key form")
    ui.find("admin-budget-key").send_keys(key_id)
    ui.find("admin-budget-usd").send_keys("-5")
    ui.find("admin-set-budget").click()
    said = ui.banner()
    assert "refused the request as invalid" in said and "usd" in said, said
    ui.find("admin-budget-usd").clear()
    ui.find("admin-budget-usd").send_keys("12.5")
    Select(ui.find("admin-budget-period")).select_by_value("monthly")
    ui.find("admin-budget-timezone").send_keys("Mars/Olympus_Mons")
    ui.find("admin-set-budget").click()
    said = ui.banner()
    assert "refused the request as invalid" in said and "Mars/Olympus_Mons" in said, said
    assert budgets() == []  # neither wrote anything
    ui.find("admin-budget-timezone").clear()
    ui.find("admin-budget-timezone").send_keys("Asia/Kolkata")
    ui.find("admin-budget-alerts").send_keys("50, 80")
    ui.find("admin-set-budget").click()
    ui.wait(lambda: budgets(), what="the key's budget")
    [rule] = budgets()
    fields = ("scope", "name", "limit", "period", "timezone", "alert_at")
    assert [rule[f] for f in fields] == ["key", key_id, 12_500_000, "monthly", "Asia/Kolkata", [50, 80]]
    row = ui.wait(lambda: admin_row("key", "usd"), what="the key budget's row")
    resets = _in_zone(rule["resets_at"], "Asia/Kolkata")
    assert resets.endswith("00:00 Asia/Kolkata") and resets[8:10] == "01"  # local midnight, the 1st
    for text in ("USD", "monthly (Asia/Kolkata)", "$12.500000", resets, "50%, 80%"):
        assert text in row.text, (text, row.text)
    # the same form sets a pool's token capacity and a daily USD budget in another timezone
    Select(ui.find("admin-budget-scope")).select_by_value("pool")
    for control, value in [("admin-budget-tenant", "usdco"), ("admin-budget-tokens", "90000")]:
        ui.find(control).send_keys(value)
    for control in ("admin-budget-usd", "admin-budget-timezone", "admin-budget-alerts"):
        ui.find(control).clear()
    ui.find("admin-budget-usd").send_keys("3")
    Select(ui.find("admin-budget-period")).select_by_value("daily")
    ui.find("admin-budget-timezone").send_keys("America/New_York")
    ui.find("admin-set-budget").click()
    pool_usd = ui.wait(lambda: admin_row("pool", "usd"), what="the pool's USD budget row")
    assert "daily (America/New_York)" in pool_usd.text and "$3.000000" in pool_usd.text
    assert "90,000 tokens" in ui.wait(lambda: admin_row("pool", "tokens"), what="the pool's tokens row").text
    ui.shot("admin-budgets")

    assert ui.gateway.chat(key).status_code == 200  # spend something
    ui.login(key)
    ui.wait(lambda: ui.visible("nav-usage"), what="the usage link")
    ui.find("nav-usage").click()
    ui.wait(lambda: len(ui.all("budget-row")) == 3, what="the three budget rows")
    listed = {(b["scope"], b["kind"]): b for b in ui.gateway.get(key, "/v1/budgets").json()["budgets"]}
    mine = listed[("key", "usd")]
    assert mine["spent"] > 0
    row = next(r for r in ui.all("budget-row") if r.text.startswith(f"key {key_id}"))
    assert row.get_attribute("data-kind") == "usd"
    assert f"${mine['spent'] / 1e6:.6f}" in row.text and f"${mine['remaining'] / 1e6:.6f}" in row.text
    assert f"monthly, resets at {resets}" in row.text
    progress = row.find_element("css selector", "progress")
    assert float(progress.get_attribute("max")) == 12_500_000
    assert float(progress.get_attribute("value")) == mine["spent"]
    tokens = next(r for r in ui.all("budget-row") if r.get_attribute("data-kind") == "tokens")
    pool = listed[("pool", "tokens")]
    assert f"{pool['spent']:,} tokens" in tokens.text and "90,000 tokens" in tokens.text
    assert float(tokens.find_element("css selector", "progress").get_attribute("value")) == pool["spent"] > 0
    daily = listed[("pool", "usd")]
    daily_row = next(r for r in ui.all("budget-row") if r.text.startswith("pool default $"))
    assert f"daily, resets at {_in_zone(daily['resets_at'], 'America/New_York')}" in daily_row.text
    ui.shot("usage-usd-budgets")

    # a budget refusal names the budget and when it resets
    cut = ui.gateway.admin("PUT", f"/keys/{key_id}/budget", json={"usd": 0.000001})
    assert cut.status_code == 200, cut.text
    ui.find("nav-chat").click()
    ui.send("over budget")
    said = ui.banner()
    assert "Try again" not in said  # its Retry-After is days: the reset time says it
    assert f"the monthly USD budget of key {key_id} has run out; it resets at {resets}" in said
    assert said.startswith("Budget exhausted:")
    ui.shot("chat-usd-budget-exhausted")
