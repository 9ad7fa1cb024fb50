"""Smoke tests of bench/peers.py's pure parts: options, the ratio table, the peers' launch settings.

No timing is asserted anywhere: the harness itself runs by hand (bench/README.md), not in CI.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> dict[str, ModuleType]:
    sys.path.insert(0, str(BENCH))
    try:
        names = ("peers", "peers_report", "peer_install", "peer_targets", "proctree", "httpload")
        return {name: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(str(BENCH))


def _latency(p50: float, p95: float, ttfb: float | None = None, errors: int = 0) -> dict[str, Any]:
    stats: dict[str, Any] = {"requests": 100, "errors": errors, "p50_ms": p50, "p95_ms": p95}
    if ttfb is not None:
        stats["ttfb_p50_ms"] = ttfb
    if errors:
        stats["last_error"] = 'HTTP 500: b\'{"status":"failure"}\''
    return stats


def _target(c1: float, stream: float, ttfb: float, rps: float, rss: float, errors: int = 0) -> dict[str, Any]:
    return {
        "c1": _latency(c1, c1 * 2),
        "stream": _latency(stream, stream * 2, ttfb, errors),
        "c16": {"rps": rps, "p50_ms": 16 / rps * 1000, "cpu_us_per_request": 1e6 / rps},
        "process": {"rss_mb": rss, "ready_s": 1.0},
    }


def _results(**extra: Any) -> dict[str, Any]:
    return {
        "mode": "quick",
        "plan": {"rounds": 3, "requests": 600, "stream_requests": 300, "concurrency": 16, "seconds": 2.0},
        "environment": {"cpus": 2, "loadavg_at_start": [1.0, 1, 1], "loadavg_at_end": [2.0, 2, 2]},
        "targets": {
            "direct": {"version": "stub"},
            "tollgate": {"version": "0.1.0"},
            "portkey": {"version": "1.15.2"},
        },
        "skipped": {},
        "metrics": {
            "direct": _target(c1=0.5, stream=1.0, ttfb=0.6, rps=5000, rss=30),
            "tollgate": _target(c1=1.5, stream=3.0, ttfb=1.6, rps=300, rss=60),
            "portkey": _target(c1=2.5, stream=31.0, ttfb=26.6, rps=200, rss=150),
        },
        **extra,
    }


def test_defaults_are_the_full_plan_with_every_peer(bench: dict[str, ModuleType]) -> None:
    peers = bench["peers"]
    args = peers.parse_args([])
    plan, mode = peers.plan_from(args)
    assert args.peers == ["tollgate", "portkey", "litellm"]
    assert (plan, mode) == (peers.FULL, "full")
    assert args.tollgate_entry == "serve"


def test_counts_on_the_command_line_adjust_the_chosen_plan(bench: dict[str, ModuleType]) -> None:
    peers = bench["peers"]
    args = peers.parse_args(
        ["--quick", "--rounds", "2", "--seconds", "0.5", "--peers", "portkey,tollgate,portkey"]
    )
    plan, mode = peers.plan_from(args)
    assert (plan.rounds, plan.seconds, plan.requests) == (2, 0.5, peers.QUICK.requests)
    assert mode == "quick, adjusted"
    assert args.peers == ["portkey", "tollgate"]


@pytest.mark.parametrize(
    "argv", [["--peers", "tollgate,kong"], ["--peers", ","], ["--rounds", "0"], ["--seconds", "-1"]]
)
def test_bad_options_are_refused(bench: dict[str, ModuleType], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench["peers"].parse_args(argv)
    assert exit_info.value.code == 2


def test_added_is_each_gateway_minus_direct_and_ratios_are_tollgate_over_peer(
    bench: dict[str, ModuleType],
) -> None:
    report = bench["peers_report"]
    results = _results()
    added = report.added(results["metrics"])
    assert added["tollgate"]["c1_p50_ms"] == pytest.approx(1.0)
    assert added["portkey"]["stream_ttfb_p50_ms"] == pytest.approx(26.0)
    ratios = report.ratios(results)["portkey"]
    assert ratios["c=1 p50 added (ms)"] == pytest.approx(0.5)
    assert ratios["c=16 throughput (req/s)"] == pytest.approx(1.5)
    assert ratios["RSS after the run (MB)"] == pytest.approx(0.4)


def test_a_ratio_against_a_missing_or_non_positive_value_is_not_a_number(
    bench: dict[str, ModuleType],
) -> None:
    ratio = bench["peers_report"].ratio
    assert math.isnan(ratio(1.0, math.nan))
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(1.0, -0.2))
    assert ratio(3.0, 2.0) == 1.5


def test_table_shows_absolutes_added_and_ratios_and_names_failures(bench: dict[str, ModuleType]) -> None:
    report = bench["peers_report"]
    results = _results(skipped={"litellm": "pip install ... failed (exit 1)"})
    results["metrics"]["portkey"]["stream"] = _latency(math.nan, math.nan, errors=300)
    text = report.render(results)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("metric"))
    assert header.split() == ["metric", "direct", "tollgate", "portkey", "tollgate/portkey"]
    added_row = next(line for line in lines if line.startswith("c=1 p50 added"))
    assert added_row.split()[-4:] == ["-", "+1.000", "+2.000", "0.50x"]
    ttfb_row = next(line for line in lines if line.startswith("stream first byte"))
    assert ttfb_row.split()[-2:] == ["-", "-"]  # portkey's stream failed: no value, no ratio
    assert "portkey stream: 300 failed; last: HTTP 500" in text
    assert "skipped litellm:" in text
    assert "| c=16 throughput (req/s) | 5000 | 300.0 | 200.0 | 1.50x |" in report.markdown(results)


def test_goals_report_met_missed_and_unknown(bench: dict[str, ModuleType]) -> None:
    report = bench["peers_report"]
    points = [{"requests": n, "rss_mb": mb} for n, mb in [(0, 50.0), (10000, 60.0), (20000, 70.0)]]
    curve: dict[str, Any] = {"concurrency": 16, "points": points}
    curve["growth_second_half_mb"] = report.growth_second_half(curve["points"])
    goals = {goal: met for goal, _shown, met in report.goals(_results(rss_curve=curve))}
    assert goals["c=1 p50 added <= 1.5 ms"] is True
    assert goals["c=1 p50 added below Portkey's"] is True
    assert goals["c=16 req/s >= 1.5x Portkey's"] is True
    assert goals["stream first byte added <= 1.5 ms"] is True
    assert goals["RSS <= 80 MB and flat (growth <= 2 MB)"] is False  # +10 MB over the second half
    assert goals["cold start <= 1.3x `import litestar`"] is None


def test_rss_growth_is_measured_over_the_second_half_of_the_curve(bench: dict[str, ModuleType]) -> None:
    growth = bench["peers_report"].growth_second_half
    points = [
        {"requests": n, "rss_mb": mb} for n, mb in [(0, 40.0), (5000, 60.0), (10000, 61.0), (20000, 62.5)]
    ]
    assert growth(points) == pytest.approx(1.5)
    assert math.isnan(growth([{"requests": 0, "rss_mb": None}]))


def test_json_output_has_null_where_a_metric_could_not_be_measured(bench: dict[str, ModuleType]) -> None:
    cleaned = bench["peers"].jsonable({"a": [1.0, math.nan], "b": {"c": math.inf}, "d": (2, "x")})
    assert json.loads(json.dumps(cleaned, allow_nan=False)) == {
        "a": [1.0, None],
        "b": {"c": None},
        "d": [2, "x"],
    }


def test_a_peer_request_carries_its_routing_headers(bench: dict[str, ModuleType]) -> None:
    httpload = bench["httpload"]
    target = httpload.Target("portkey", "127.0.0.1", 8787)
    raw = httpload.encode_post(target, {"model": "m"}, "sk-x", {"x-portkey-provider": "openai"})
    head, body = raw.split(b"\r\n\r\n")
    assert b"\r\nAuthorization: Bearer sk-x\r\nx-portkey-provider: openai" in head
    assert body == b'{"model":"m"}'
    assert b"Content-Length: 13" in head


def test_litellm_runs_offline_in_a_bare_environment(
    bench: dict[str, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    installed = bench["peer_install"].Installed("litellm", "1.0", tmp_path / "litellm")
    launch = bench["peer_targets"].litellm(installed, 9001, 9000, tmp_path)
    assert "OPENAI_API_KEY" not in launch.env
    assert launch.env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert launch.env["LITELLM_MASTER_KEY"] == launch.api_key
    assert launch.argv[launch.argv.index("--host") + 1] == "127.0.0.1"
    config = json.loads((tmp_path / "litellm.json").read_text())
    assert config["model_list"][0]["litellm_params"]["api_base"] == "http://127.0.0.1:9000/v1"


def test_an_interrupted_install_is_redone(
    bench: dict[str, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install = bench["peer_install"]
    monkeypatch.setenv("TOLLGATE_CACHE", str(tmp_path))
    assert install.cache_root() == tmp_path / "peers"
    home = tmp_path / "peers" / "x"
    home.mkdir(parents=True)
    (home / "half-written").write_text("")
    assert install._fresh(home) is False
    assert list(home.iterdir()) == []
    (home / install.MARKER).write_text("1\n")
    assert install._fresh(home) is True


def test_process_tree_counts_children(bench: dict[str, ModuleType]) -> None:
    proctree = bench["proctree"]
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs Linux /proc")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in proctree.tree(os.getpid())
        assert proctree.rss_bytes(os.getpid()) > proctree.rss_bytes(child.pid) > 0
    finally:
        child.kill()
        child.wait()
    assert proctree.tree(child.pid) == []


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_portkey_shim_keeps_a_port_only_listen_on_loopback(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    shim = tmp_path / "shim.cjs"
    shim.write_text(bench["peer_targets"].LOOPBACK_SHIM)
    script = (
        "const s = require('http').createServer();"
        "s.listen(0, () => { console.log(JSON.stringify(s.address())); s.close(); });"
    )
    done = subprocess.run(
        ["node", "--require", str(shim), "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert json.loads(done.stdout)["address"] == "127.0.0.1"


def test_an_earlier_runs_json_renders_again(bench: dict[str, ModuleType]) -> None:
    """--report: a metric that was NaN in the run is null in the JSON, and shows as '-' again."""
    results = _results()
    results["metrics"]["portkey"]["c16"]["rps"] = math.nan
    reloaded = json.loads(json.dumps(bench["peers"].jsonable(results), allow_nan=False))
    row = next(line for line in bench["peers_report"].render(reloaded).splitlines() if "req/s)" in line)
    assert row.split()[-3:] == ["300.0", "-", "-"]


def test_the_stub_long_stream_is_well_formed() -> None:
    """``stub_upstream.py --stream-chunks N``: role, N content chunks, finish, usage counting N, [DONE]."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    stub = importlib.import_module("stub_upstream")
    events = stub.long_stream(20)
    assert events[-1] == b"data: [DONE]\n\n" and all(e.endswith(b"\n\n") for e in events)
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    contents = [c["delta"].get("content") for p in payloads[1:-2] for c in p["choices"]]
    assert len(contents) == 20 and all(contents)
    assert payloads[-2]["choices"][0]["finish_reason"] == "stop"
    assert payloads[-1]["usage"]["completion_tokens"] == 20 and payloads[-1]["choices"] == []
