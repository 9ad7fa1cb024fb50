"""The console's static files at /ui: served without a key, with strict security headers, and nothing but
the packaged files. The browser behaviour itself is tested in tests/e2e/test_console.py (slow suite)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.fakes.server import ServerThread
from tollgate.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "layers" / "tollgate" / "tollgate" / "console"
OWN_FILES = sorted(p for p in CONSOLE.rglob("*") if p.is_file() and "vendor" not in p.parts)
ADMIN_KEY = "admin-key-for-console-tests"


@pytest.fixture
def gateway(start_gateway: Callable[..., ServerThread]) -> str:
    """A gateway with a key, so it is not in open mode: /ui must still need none."""
    server = start_gateway(Settings(admin_key=ADMIN_KEY), include_admin=True)
    created = httpx.post(
        f"{server.url}/admin/keys", json={"tenant": "acme"}, headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert created.status_code == 201
    return server.url


def assert_secure(response: httpx.Response) -> None:
    csp = dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval', no other host
    assert csp["style-src"] == "'self'"
    assert csp["connect-src"] == "'self'"
    assert csp["img-src"] == "'self' data:"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["base-uri"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in response.headers


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.inline_scripts = 0
        self.inline_attributes: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.inline_attributes += [n for n in values if n.startswith("on") or n == "style"]
        link = values.get("src") if tag == "script" else values.get("href") if tag == "link" else None
        if link and not link.startswith("data:"):
            self.assets.append(link)
        self._in_script = tag == "script"
        if tag == "script" and not values.get("src"):
            self.inline_scripts += 1

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def test_the_page_and_every_asset_it_loads_are_served_without_a_key(gateway: str) -> None:
    page = httpx.get(f"{gateway}/ui")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert_secure(page)
    parsed = _Page()
    parsed.feed(page.text)
    assert parsed.inline_scripts == 0 and parsed.inline_attributes == []
    assert len(parsed.assets) == 4
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    for asset in parsed.assets:
        assert asset.startswith("ui/")  # relative to /ui, so an API Gateway stage prefix keeps working
        response = httpx.get(f"{gateway}/{asset}")
        assert response.status_code == 200, asset
        assert response.headers["content-type"] == types[Path(asset).suffix]
        assert_secure(response)
    assert httpx.get(f"{gateway}/v1/models").status_code == 401  # the APIs themselves still need the key


def test_every_module_import_resolves_to_a_served_file(gateway: str) -> None:
    for path in CONSOLE.glob("*.js"):
        for name in re.findall(r'from "\./([\w.-]+)"', path.read_text()):
            assert httpx.get(f"{gateway}/ui/{name}").status_code == 200, (path.name, name)


def test_the_vendored_chart_library_comes_with_its_licence(gateway: str) -> None:
    licence = httpx.get(f"{gateway}/ui/vendor/uPlot.LICENSE")
    assert licence.status_code == 200 and "MIT License" in licence.text
    assert licence.headers["content-type"].startswith("text/plain")


def test_a_trailing_slash_redirects_relatively_to_the_page(gateway: str) -> None:
    for path in ("/ui/", "/ui/?x=1"):
        response = httpx.get(f"{gateway}{path}")
        assert response.status_code == 308
        assert response.headers["location"] == "../ui"  # /Prod/ui/ -> /Prod/ui behind API Gateway
        assert_secure(response)


@pytest.mark.parametrize(
    "path",
    [
        "/ui/nope.js",
        "/ui/../pyproject.toml",
        "/ui/%2e%2e/app.py",
        "/ui/vendor/../../app.py",
        "/ui/..%2fapp.py",
        "/ui/index.html/x",
        "/ui/vendor",
        "/ui/.hidden",
        "/ui/%00",
    ],
)
def test_only_packaged_console_files_are_served(gateway: str, path: str) -> None:
    with httpx.Client() as client:
        request = client.build_request("GET", f"{gateway}/")
        request.url = request.url.copy_with(raw_path=path.encode())
        response = client.send(request)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["type"] == "not_found_error"


def test_the_console_never_writes_html_from_strings_and_names_no_other_host() -> None:
    html_sinks = r"\.(?:inner|outer)HTML\b|insertAdjacentHTML|document\.write|\beval\(|\bFunction\(|srcdoc"
    for path in OWN_FILES:
        text = path.read_text()
        assert re.findall(html_sinks, text) == [], path.name
        assert re.findall(r"\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text) == [], path.name


def test_the_console_files_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["tollgate"]
    package = ROOT / "layers" / "tollgate" / "tollgate"
    for path in CONSOLE.rglob("*"):
        if path.is_file():
            relative = path.relative_to(package).as_posix()
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
