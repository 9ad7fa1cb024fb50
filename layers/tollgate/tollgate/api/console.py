"""GET /ui: the web console, static files packaged with the library (tollgate/console), no auth.

The console calls the JSON APIs with the key the user types in, so it needs no session of its own. Every
console response carries a strict Content-Security-Policy (no inline script, nothing from another origin).
Only files that exist in the packaged folder are served; any other name is a 404, never a path on disk.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Redirect, Response

from ..errors import NotFound
from .errors import error_payload

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
MEDIA_TYPES = {
    "html": "text/html",  # Litestar adds "; charset=utf-8" to text types
    "js": "text/javascript",
    "css": "text/css",
    "txt": "text/plain",
    "LICENSE": "text/plain",
}


def _walk(folder: Traversable, prefix: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for item in folder.iterdir():
        name = f"{prefix}{item.name}"
        if item.is_dir():
            files.update(_walk(item, f"{name}/"))
        elif media_type(name) is not None:
            files[name] = item.read_bytes()
    return files


@cache
def console_files() -> dict[str, bytes]:
    """Relative path -> bytes of every servable console file, read once per process on first use."""
    return _walk(resources.files("tollgate").joinpath("console"), "")


def media_type(name: str) -> str | None:
    return MEDIA_TYPES.get(name.rsplit(".", 1)[-1])


def _file(name: str) -> Response[Any]:
    """The file, or a 404 in the OpenAI error shape that still carries the console's headers."""
    body = console_files().get(name)
    kind = media_type(name)
    if body is None or kind is None:
        error = error_payload(NotFound(f"no console file {name!r}", param="path"))
        return Response(error, status_code=404, headers=SECURITY_HEADERS)
    return Response(body, media_type=kind, headers=SECURITY_HEADERS)


def _to_index() -> Redirect:
    """/ui/ -> /ui, relative, so that it stays under an API Gateway stage prefix (/Prod/ui/ -> /Prod/ui)."""
    return Redirect("../ui", status_code=308, headers=SECURITY_HEADERS)


@get("/ui", sync_to_thread=False)
def console_index(request: Request[Any, Any, Any]) -> Response[Any]:
    """The page itself; its assets are ``ui/...`` relative to it, so a stage prefix (/Prod/ui) works.
    Litestar routes /ui/ here too, where those relative paths would point one level too deep."""
    if request.scope.get("raw_path", b"").split(b"?")[0].endswith(b"/"):
        return _to_index()
    return _file("index.html")


@get("/ui/{path:path}", sync_to_thread=False)
def console_asset(path: FromPath[str]) -> Response[Any]:
    name = path.lstrip("/")
    return _to_index() if not name else _file(name)
