"""Install the peer gateways for ``bench/peers.py`` once, at pinned versions, into a cache outside the repo.

- Portkey's open-source gateway from npm (``@portkey-ai/gateway``) into ``<cache>/portkey-<version>/``, with
  its two web-framework dependencies pinned to the versions of Portkey's own lockfile (see ``PORTKEY_PINS``);
- LiteLLM's proxy from PyPI (``litellm[proxy]``) into its own virtual environment,
  ``<cache>/litellm-<version>/venv`` (never into the project's environment).

``<cache>`` is ``${TOLLGATE_CACHE:-~/.cache/tollgate}/peers``. A finished install leaves a ``.installed``
marker; a broken one is wiped and redone on the next run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PORTKEY_VERSION = "1.15.2"
# `npm install @portkey-ai/gateway` resolves Portkey's caret ranges to the newest releases. With those
# (@hono/node-server 1.19.19, hono 4.13.19 in November 2026) its light Response keeps the upstream fetch's
# immutable Headers, and Portkey's streaming path fails on `headers.append` ("TypeError: immutable", HTTP 500
# for every stream). The versions below are those of Portkey's own package-lock.json at v1.15.2.
PORTKEY_PINS = {"@hono/node-server": "1.13.5", "hono": "4.9.7"}
# 1.108 and later need packages (litellm-proxy, newer litellm-proxy-extras) that PyPI does not serve
LITELLM_VERSION = "1.106.12"
INSTALL_TIMEOUT_S = 900
MARKER = ".installed"


class PeerUnavailable(RuntimeError):
    """A peer cannot be installed or run here (no npm, no registry, a failed install)."""


@dataclass(frozen=True, slots=True)
class Installed:
    name: str
    version: str
    entry: Path  # Portkey: its start-server.js; LiteLLM: the venv's `litellm` script
    note: str = ""


def cache_root() -> Path:
    return Path(os.environ.get("TOLLGATE_CACHE", "~/.cache/tollgate")).expanduser() / "peers"


def _run(argv: list[str], cwd: Path, log: Path) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(
                argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PeerUnavailable(f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        raise PeerUnavailable(f"{' '.join(argv[:3])} ... failed (exit {done.returncode}); see {log}")


def _fresh(home: Path) -> bool:
    """True when ``home`` holds a finished install; otherwise wipe what is there and return False."""
    if (home / MARKER).exists():
        return True
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    return False


def portkey(log: Path) -> Installed:
    home = cache_root() / f"portkey-{PORTKEY_VERSION}"
    entry = home / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    note = "deps pinned: " + ", ".join(f"{name} {version}" for name, version in PORTKEY_PINS.items())
    if _fresh(home):
        return Installed("portkey", PORTKEY_VERSION, entry, note)
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise PeerUnavailable("portkey needs node and npm on PATH")
    manifest = (
        '{"name": "tollgate-bench-portkey", "private": true,\n'
        f' "dependencies": {{"@portkey-ai/gateway": "{PORTKEY_VERSION}"}},\n'
        ' "overrides": {' + ", ".join(f'"{n}": "{v}"' for n, v in PORTKEY_PINS.items()) + "}}\n"
    )
    (home / "package.json").write_text(manifest)
    # --ignore-scripts: Portkey's only install script is patch-package, which has nothing to patch here
    _run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev"], home, log)
    if not entry.exists():
        raise PeerUnavailable(f"portkey installed without {entry}")
    (home / MARKER).write_text(PORTKEY_VERSION + "\n")
    return Installed("portkey", PORTKEY_VERSION, entry, note)


def litellm(log: Path) -> Installed:
    home = cache_root() / f"litellm-{LITELLM_VERSION}"
    venv = home / "venv"
    entry = venv / "bin" / "litellm"
    if _fresh(home):
        return Installed("litellm", LITELLM_VERSION, entry)
    _run([sys.executable, "-m", "venv", str(venv)], home, log)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    _run([*pip, f"litellm[proxy]=={LITELLM_VERSION}"], home, log)
    if not entry.exists():
        raise PeerUnavailable(f"litellm installed without {entry}")
    (home / MARKER).write_text(LITELLM_VERSION + "\n")
    return Installed("litellm", LITELLM_VERSION, entry)


INSTALLERS = {"portkey": portkey, "litellm": litellm}
