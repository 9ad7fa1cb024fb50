"""How ``bench/peers.py`` starts each target, all on 127.0.0.1, each one calling the same stub upstream.

- **direct**: the stub itself (``stub_upstream.py``), the baseline every "added" number is measured against;
- **tollgate**: ``tollgate serve`` (or the chat Lambda's entry) on a SQLite file, with a key from
  ``tollgate keys create`` and a token budget on its pool, so every request authenticates, reserves, settles
  and appends to the audit chain;
- **portkey**: Portkey's gateway under Node, routed per request by its headers (provider ``openai``, custom
  host = the stub); no state;
- **litellm**: LiteLLM's proxy with one model mapped to the stub, a master key, no database; no state.

The peers get a bare environment (PATH, a HOME in the run's temp dir) and every setting that keeps them off
the network: LiteLLM's local cost map and other ``LITELLM_LOCAL_*`` copies instead of fetching them at start;
Portkey's OSS build sends nothing anywhere but the configured upstream (checked with strace, see the README).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import servers
from overhead import provision_key
from peer_install import Installed

STUB_KEY = "sk-bench"  # what the peers forward to the stub, which ignores it

# @hono/node-server's serve() listens on every interface; this preload makes a port-only listen() loopback
LOOPBACK_SHIM = """\
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, host, ...rest) {
  if (typeof port === "number" && typeof host !== "string") {
    if (host !== undefined) rest.unshift(host);
    host = "127.0.0.1";
  }
  return listen.call(this, port, host, ...rest);
};
"""

# uvicorn's dictConfig for LiteLLM: no access log line per request (tollgate runs with --no-access-log too)
QUIET_UVICORN = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"uvicorn.access": {"level": "WARNING"}},
}

LITELLM_OFFLINE = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_MODE": "PRODUCTION",  # no .env loading from the working directory
}


@dataclass(frozen=True, slots=True)
class Launch:
    """One target's process and how to talk to it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready: str  # a GET path that answers 200 once the server serves
    api_key: str | None
    version: str
    headers: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 60.0
    note: str = ""


def stub(port: int) -> Launch:
    return Launch(
        "direct", servers.stub_argv(port), dict(os.environ), "/health", STUB_KEY, "stub_upstream.py"
    )


def tollgate(port: int, stub_port: int, state: Path, log_level: str, entry: str) -> Launch:
    """``entry``: ``serve`` (``tollgate serve``: data plane and admin in one process) or ``chat``."""
    env = servers.gateway_env(stub_port, state, log_level)
    key = provision_key(env)
    if entry == "serve":
        argv = [sys.executable, "-m", "tollgate.cli", "serve", "--host", servers.HOST, "--port", str(port)]
    else:
        argv = servers.gateway_argv(port, "tollgate.app:create_app", None)
    import tollgate

    note = f"{entry}, SQLite, key + budget + audit chain, TOLLGATE_LOG_LEVEL={log_level}"
    return Launch("tollgate", argv, env, "/health", key, tollgate.__version__, note=note)


def _peer_env(state: Path, **extra: str) -> dict[str, str]:
    home = state / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def portkey(installed: Installed, port: int, stub_port: int, state: Path) -> Launch:
    shim = state / "listen-loopback.cjs"
    shim.write_text(LOOPBACK_SHIM)
    argv = ["node", "--require", str(shim), str(installed.entry), f"--port={port}", "--headless"]
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"http://{servers.HOST}:{stub_port}/v1",
    }
    env = _peer_env(state, NODE_ENV="production")
    return Launch("portkey", argv, env, "/", STUB_KEY, installed.version, headers, note=installed.note)


def litellm(installed: Installed, port: int, stub_port: int, state: Path) -> Launch:
    master_key = "sk-" + secrets.token_hex(16)
    config = state / "litellm.json"  # YAML is a superset of JSON
    model = {
        "model_name": "gpt-4o-mini",
        "litellm_params": {
            "model": "openai/gpt-4o-mini",
            "api_base": f"http://{servers.HOST}:{stub_port}/v1",
            "api_key": STUB_KEY,
        },
    }
    config.write_text(json.dumps({"model_list": [model], "litellm_settings": {"drop_params": True}}))
    log_config = state / "litellm-logging.json"
    log_config.write_text(json.dumps(QUIET_UVICORN))
    argv = [str(installed.entry), "--config", str(config), "--host", servers.HOST, "--port", str(port)]
    argv += ["--num_workers", "1", "--log_config", str(log_config)]
    env = _peer_env(state, LITELLM_MASTER_KEY=master_key, **LITELLM_OFFLINE)
    note = "one worker, master key, no database"
    return Launch("litellm", argv, env, "/health/liveliness", master_key, installed.version, note=note)
