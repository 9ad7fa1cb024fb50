"""The chat Lambda's entry (tollgate.chat_entry) and what its cold start leaves out: the same app as
tollgate.app.create_app(), the garbage collector restored, no pydantic.v1 / attrs / admin API imported."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from litestar import get
from litestar.testing import TestClient
from pydantic import BaseModel

from tollgate.api.litestar_app import TYPE_ENCODERS, GatewayApp
from tollgate.app import create_admin_app, create_app
from tollgate.chat_entry import create_app as chat_entry_app
from tollgate.config import Settings


def _routes(app: Any) -> set[tuple[str, tuple[str, ...]]]:
    return {(route.path, tuple(sorted(route.methods))) for route in app.routes}


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_SQLITE_PATH", str(tmp_path / "t.db"))


def test_chat_entry_builds_the_data_plane_and_restores_the_collector(sqlite_env: None) -> None:
    assert gc.isenabled()
    try:
        app = chat_entry_app()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # what the build left is frozen, skipped by later collections
    finally:
        gc.unfreeze()
    assert _routes(app) == _routes(create_app())
    paths = {path for path, _ in _routes(app)}
    assert "/v1/chat/completions" in paths and "/health" in paths
    assert not any(path.startswith("/admin") for path in paths)  # the admin API is the admin function's


def test_chat_entry_leaves_a_disabled_collector_disabled(sqlite_env: None) -> None:
    gc.disable()
    try:
        chat_entry_app()
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_the_apps_carry_no_pydantic_or_attrs_plugin(tmp_path: Path) -> None:
    settings = Settings(store="sqlite", sqlite_path=str(tmp_path / "t.db"))
    for app in (create_app(settings), create_admin_app(settings), create_app(settings, include_admin=True)):
        names = {type(plugin).__name__ for plugin in app.plugins}
        assert not any("Pydantic" in name or "Attrs" in name for name in names), names
    served = _routes(create_app(settings, include_admin=True))
    assert ("/admin/keys", ("GET", "OPTIONS", "POST")) in served  # `tollgate serve`'s app has both


def test_a_pydantic_model_in_a_response_is_still_encoded() -> None:
    class Item(BaseModel):
        name: str
        count: int

    @get("/item", sync_to_thread=False)
    def item() -> Any:
        return {"item": Item(name="a", count=2)}

    with TestClient(GatewayApp(route_handlers=[item], type_encoders=TYPE_ENCODERS)) as client:
        assert client.get("/item").json() == {"item": {"name": "a", "count": 2}}


def test_a_fresh_chat_entry_imports_neither_pydantic_v1_nor_attrs_nor_the_admin_api(tmp_path: Path) -> None:
    code = (
        "import sys, json; from tollgate.chat_entry import create_app; create_app(); "
        "print(json.dumps([m for m in ('pydantic.v1', 'attr', 'attrs', 'tollgate.api.admin') "
        "if m in sys.modules]))"
    )
    env = {**os.environ, "TOLLGATE_SQLITE_PATH": str(tmp_path / "t.db")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
