"""Running the real Claude Code CLI (``claude -p``) against a tollgate on 127.0.0.1.

The CLI comes from ``TOLLGATE_CLAUDE_CODE`` when set, else from ``scripts/install-claude-code.sh`` (npm,
cached). A run gets a throwaway HOME and working directory, no telemetry, no auto-update and no other
traffic, its base URL pointed at the gateway, and a hard timeout: it never waits on a network it lacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 120
_ENV = dict(os.environ)  # before the root conftest's clean_env strips TOLLGATE_* around each test


def install() -> Path:
    """The ``claude`` executable; the test is skipped only when it cannot be installed at all."""
    if value := _ENV.get("TOLLGATE_CLAUDE_CODE"):
        return Path(value)
    script = ROOT / "scripts" / "install-claude-code.sh"
    env = {**_ENV, "PYTHON": _ENV.get("PYTHON", sys.executable)}
    result = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, check=False, timeout=900
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        pytest.skip(f"Claude Code cannot be installed ({result.returncode}): {result.stderr[-2000:]}")
    return Path(lines[-1])


@dataclass(frozen=True)
class ClaudeCode:
    binary: Path
    workdir: Path

    def run(
        self, base_url: str, token: str, prompt: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        env = (env or {}) | {
            "PATH": _ENV.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_AUTH_TOKEN": token,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "NO_PROXY": "127.0.0.1",
        }
        command = [str(self.binary), "-p", prompt, *args]
        return subprocess.run(
            command,
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
