"""The real Codex CLI (npm ``@openai/codex``) pointed at a tollgate, for the slow suite.

The CLI comes from ``TOLLGATE_CODEX`` when set, else from ``scripts/install-codex.sh`` (pinned, cached under
``~/.cache/tollgate/npm/codex/<version>``); a test skips only when that install is impossible (no npm, no
registry). Each run gets its own ``CODEX_HOME`` with a ``config.toml`` whose only provider is tollgate
(``wire_api = "responses"``, the key read from ``TOLLGATE_API_KEY``), no retries, and is bounded by a timeout.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 120
_ENV = dict(os.environ)  # before the root conftest's clean_env strips TOLLGATE_* around each test


@cache
def codex_bin() -> str | None:
    """The ``codex`` command, installed (and cached) on first use; None when it cannot be installed."""
    given = _ENV.get("TOLLGATE_CODEX")
    if given:
        return given
    try:
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "install-codex.sh")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not Path(lines[-1]).exists():
        return None
    return lines[-1]


def require_codex() -> str:
    path = codex_bin()
    if path is None:
        pytest.skip("the Codex CLI cannot be installed here (scripts/install-codex.sh failed)")
    return path


CONFIG = """\
model = "{model}"
model_provider = "tollgate"
check_for_update_on_startup = false

[model_providers.tollgate]
name = "tollgate"
base_url = "{base_url}"
wire_api = "responses"
env_key = "TOLLGATE_API_KEY"
request_max_retries = 0
stream_max_retries = 0
"""


# Codex's built-in OpenAI provider pointed at tollgate: its remote compaction (a ``compaction_trigger`` item
# on /v1/responses) runs once the context passes ``compact_at`` tokens. It tries the Responses WebSocket
# first and falls back to HTTPS after its retries (tollgate has none).
BUILTIN_OPENAI_CONFIG = """\
model = "{model}"
model_provider = "openai"
openai_base_url = "{base_url}"
check_for_update_on_startup = false
model_auto_compact_token_limit = {compact_at}
"""


@dataclass(frozen=True)
class CodexRun:
    returncode: int
    last_message: str
    stdout: str
    stderr: str


# Features whose tools and instructions a small local model's context cannot hold.
SMALL_PROMPT_DISABLED = ("multi_agent", "goals", "apps", "plugins", "skill_search", "image_generation")


def run_codex(
    home: Path,
    gateway_url: str,
    key: str,
    prompt: str,
    *,
    model: str = "auto",
    yolo: bool = False,
    small: Path | None = None,
    compact_at: int | None = None,
) -> CodexRun:
    """``codex exec`` once, in a scratch working directory; ``yolo`` lets it run shell commands without a
    sandbox or approval prompts (``--dangerously-bypass-approvals-and-sandbox``: the test is the sandbox);
    ``small`` replaces Codex's base instructions with that file and turns off the bulkiest features, so the
    prompt fits a 2048-token context; ``compact_at`` uses the built-in ``openai`` provider instead, with
    remote compaction past that many tokens (``BUILTIN_OPENAI_CONFIG``)."""
    codex = require_codex()
    (home / "codex-home").mkdir(parents=True, exist_ok=True)
    (home / "work").mkdir(exist_ok=True)
    config = CONFIG.format(model=model, base_url=f"{gateway_url}/v1")
    if compact_at is not None:
        config = BUILTIN_OPENAI_CONFIG.format(
            model=model, base_url=f"{gateway_url}/v1", compact_at=compact_at
        )
    (home / "codex-home" / "config.toml").write_text(config)
    last = home / "last-message.txt"
    command = [codex, "exec", "--skip-git-repo-check", "--ephemeral", "--color", "never", "-o", str(last)]
    command += ["-C", str(home / "work")]
    if yolo:
        command.append("--dangerously-bypass-approvals-and-sandbox")
    if small is not None:
        command += ["-c", f'model_instructions_file="{small}"']
        for feature in SMALL_PROMPT_DISABLED:
            command += ["--disable", feature]
    env = {
        "PATH": _ENV.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(home / "codex-home"),
        "TOLLGATE_API_KEY": key,
        "NO_COLOR": "1",
    }
    if compact_at is not None:
        env |= {"OPENAI_API_KEY": key, "CODEX_API_KEY": key}
    result = subprocess.run(
        [*command, prompt],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    text = last.read_text() if last.exists() else ""
    return CodexRun(result.returncode, text.strip(), result.stdout, result.stderr)
