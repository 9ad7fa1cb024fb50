"""The human-readable table for ``bench/overhead.py`` results (the JSON holds everything)."""

from __future__ import annotations

from typing import Any

Phase = dict[str, Any]
WIDTH = 94


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def _row(label: str, direct: Any, gateway: Any, delta: str, target: str = "", verdict: str = "") -> str:
    return f"{label:<34}{direct!s:>11}{gateway!s:>11}{delta:>13}  {target:<13}{verdict}".rstrip()


def render(results: Phase) -> str:
    env = results["environment"]
    lines = [
        f"tollgate gateway overhead ({results['mode']}): loopback, {env['cpus']} CPUs, "
        f"Python {env['python']}, servers on {env['server_loop']}, client {env['client_loop']}, "
        f"load average at start {env['loadavg_at_start'][0]}",
        _row("metric", "direct", "gateway", "added/ratio", "target"),
        "-" * WIDTH,
    ]
    lines += _latency_rows("c=1 latency", results["latency_c1"], "p50_ms", "p95_ms", target_ms=1.0)
    lines += _throughput_rows(results["throughput"])
    lines += _latency_rows("stream TTFB", results["streaming_c1"], "ttfb_p50_ms", "ttfb_p95_ms")
    lines += _latency_rows("stream total", results["streaming_c1"], "p50_ms", "p95_ms")
    lines += ["-" * WIDTH, *_cpu_rows(results)]
    if results.get("coldstart"):
        lines += ["-" * WIDTH, *_coldstart_rows(results["coldstart"])]
    if results.get("gateway_profile_top_tottime"):
        lines.append("(--profile: the gateway ran under cProfile; its numbers above are inflated)")
    return "\n".join(lines)


def _latency_rows(label: str, phase: Phase, p50: str, p95: str, target_ms: float | None = None) -> list[str]:
    direct, gateway, added = phase["direct"], phase["gateway"], phase["added"]
    target = f"<= +{target_ms:g} ms" if target_ms is not None else ""
    verdict = _verdict(added[p50] <= target_ms) if target_ms is not None else ""
    return [
        _row(f"{label} p50 (ms)", direct[p50], gateway[p50], f"+{added[p50]:.3f}", target, verdict),
        _row(f"{label} p95 (ms)", direct[p95], gateway[p95], f"+{added[p95]:.3f}"),
    ]


def _throughput_rows(thr: Phase) -> list[str]:
    direct, gateway, c = thr["direct"], thr["gateway"], thr["concurrency"]
    added = gateway["p50_ms"] - direct["p50_ms"]
    return [
        _row(
            f"c={c} throughput (req/s)",
            direct["rps"],
            gateway["rps"],
            f"{thr['ratio']:.1%}",
            ">= 50%",
            _verdict(thr["ratio"] >= 0.5),
        ),
        _row(f"c={c} latency p50 (ms)", direct["p50_ms"], gateway["p50_ms"], f"+{added:.3f}"),
    ]


def _cpu(per_request: dict[str, float], name: str) -> str:
    value = per_request.get(name)
    return "?" if value is None else f"{value:.0f}"


def _cpu_rows(results: Phase) -> list[str]:
    lat, st, thr = results["latency_c1"], results["streaming_c1"], results["throughput"]
    rows = ["server CPU per request, us (stub alone | gateway, + stub behind it):"]
    for label, direct, gateway in (
        ("c=1", lat["direct"]["cpu_us_per_request"], lat["gateway"]["cpu_us_per_request"]),
        ("stream c=1", st["direct"]["cpu_us_per_request"], st["gateway"]["cpu_us_per_request"]),
        (
            f"c={thr['concurrency']}",
            thr["direct"]["cpu_us_per_request"],
            thr["gateway"]["cpu_us_per_request"],
        ),
    ):
        rows.append(
            f"  {label:<11} stub {_cpu(direct, 'stub'):>6} | gateway {_cpu(gateway, 'gateway'):>6}"
            f" + stub {_cpu(gateway, 'stub'):>5}"
        )
    for name in ("direct", "gateway"):
        busy = ", ".join(f"{proc} {share:.0%}" for proc, share in thr[name]["cpu_share"].items())
        rows.append(f"CPU busy during c={thr['concurrency']} {name} (share of one core): {busy}")
    return rows


def _coldstart_rows(cold: Phase) -> list[str]:
    wall, imp, low = cold["wall_ms"], cold["importtime_ms"], cold["wall_min_ms"]
    lines = [
        _row("cold start", "litestar", "tollgate", "ratio", "target"),
        _row(
            "  time to ready (ms, median)",
            wall["litestar"],
            wall["tollgate"],
            f"{cold['ratio_wall']:.2f}x",
            "<= 1.3x",
            _verdict(cold["ratio_wall"] <= 1.3),
        ),
        _row("  time to ready (ms, min)", low["litestar"], low["tollgate"], f"{cold['ratio_wall_min']:.2f}x"),
        _row(
            "  -X importtime total (ms)",
            imp["litestar"],
            imp["tollgate"],
            f"{cold['ratio_importtime']:.2f}x",
            "<= 1.3x",
            _verdict(cold["ratio_importtime"] <= 1.3),
        ),
        f"  real entry (python -m uvicorn --factory ..., lifespan included) spawn to /health 200: "
        f"{cold['entry_spawn_to_health_ms']} ms (median)",
        f"  bare python {wall['bare_python']} ms; uvicorn + empty Litestar app (no OpenAPI) "
        f"{wall['uvicorn_litestar_app']} ms, imports {imp['uvicorn_litestar_app']} ms; "
        f"tollgate vs that: {cold['ratio_wall_vs_uvicorn_litestar_app']:.2f}x",
        "  heaviest imports the chat entry adds beyond `import litestar` (cumulative ms, imported by):",
    ]
    lines += [
        f"  {item['cumulative_ms']:>8.1f}  {item['module']:<42} {item['imported_by']}"
        for item in cold["top_added_imports"]
    ]
    packages = ", ".join(f"{p['package']} {p['self_ms']}" for p in cold["added_self_ms_by_package"])
    lines.append(f"  added self ms by package: {packages}")
    beyond_app = ", ".join(
        f"{item['module']} {item['cumulative_ms']:.1f}"
        for item in cold["top_added_imports_vs_uvicorn_litestar_app"][:5]
    )
    lines.append(f"  beyond uvicorn + empty Litestar app (cumulative ms): {beyond_app}")
    own = cold["own_modules_self_ms"]
    heaviest = ", ".join(f"{item['module']} {item['self_ms']}" for item in own[:5])
    lines.append(f"  tollgate's own modules, self {sum(i['self_ms'] for i in own):.1f} ms: {heaviest}")
    return lines
