"""The numbers and table of ``bench/peers.py``: per-target stats, added ms vs direct, tollgate/peer ratios.

Pure functions over plain dicts (the JSON the run writes), so they are testable without any server.
"""

from __future__ import annotations

import math
from typing import Any

import httpload

Stats = dict[str, Any]
MB = 1024 * 1024

# the targets for tollgate (reported, never asserted)
GOAL_ADDED_P50_MS = 1.5
GOAL_TTFB_ADDED_MS = 1.5
GOAL_RPS_VS_PORTKEY = 1.5
GOAL_RSS_MB = 80.0
FLAT_MB = 2.0  # RSS growth over the second half of the curve that still counts as flat


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3) if math.isfinite(seconds) else math.nan


def latency_stats(samples: httpload.Samples) -> Stats:
    """p50/p95 of the whole request, and of the first ``data:`` chunk where there was one."""
    stats: Stats = {
        "requests": len(samples.total),
        "errors": samples.errors,
        "p50_ms": ms(httpload.percentile(samples.total, 50)),
        "p95_ms": ms(httpload.percentile(samples.total, 95)),
    }
    if samples.first_data:
        stats["ttfb_p50_ms"] = ms(httpload.percentile(samples.first_data, 50))
        stats["ttfb_p95_ms"] = ms(httpload.percentile(samples.first_data, 95))
    if samples.last_error:
        stats["last_error"] = samples.last_error
    return stats


# (row label, phase, key) of the rows that show a gateway's latency minus direct's
ADDED_ROWS = [
    ("c=1 p50 added (ms)", "c1", "p50_ms"),
    ("c=1 p95 added (ms)", "c1", "p95_ms"),
    ("stream first byte p50 added (ms)", "stream", "ttfb_p50_ms"),
    ("stream end p50 added (ms)", "stream", "p50_ms"),
]


def _get(metrics: Stats, name: str, phase: str, key: str) -> float:
    value = metrics.get(name, {}).get(phase, {}).get(key)
    return float(value) if isinstance(value, int | float) else math.nan


def added(metrics: Stats) -> Stats:
    """Each gateway's latency minus direct's, per ``ADDED_ROWS`` key (NaN where either side is missing)."""
    out: Stats = {}
    for name in metrics:
        if name == "direct":
            continue
        out[name] = {
            f"{phase}_{key}": round(_get(metrics, name, phase, key) - _get(metrics, "direct", phase, key), 3)
            for _label, phase, key in ADDED_ROWS
        }
    return out


def ratio(mine: float, theirs: float) -> float:
    """tollgate / peer; NaN where it means nothing (a missing value, or a peer at or below zero)."""
    if not (math.isfinite(mine) and math.isfinite(theirs)) or theirs <= 0:
        return math.nan
    return round(mine / theirs, 3)


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        digits = 0 if abs(value) >= 1000 else 1 if abs(value) >= 100 else 2 if abs(value) >= 10 else 3
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return str(value)


def _one_decimal(value: Any, sign: str = "") -> str:
    return f"{value:{sign}.1f}" if isinstance(value, int | float) and math.isfinite(value) else "-"


def _fmt_ratio(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2f}x"


def rows(results: Stats) -> list[tuple[str, dict[str, float], bool]]:
    """(label, value per target, signed) for every row of the table, in order."""
    metrics, extra = results["metrics"], added(results["metrics"])
    names = list(metrics)
    table: list[tuple[str, dict[str, float], bool]] = [
        ("c=1 p50 (ms)", {n: _get(metrics, n, "c1", "p50_ms") for n in names}, False)
    ]
    for label, phase, key in ADDED_ROWS:
        values = {n: extra[n][f"{phase}_{key}"] for n in names if n != "direct"}
        table.append((label, values, True))
    conc = results["plan"]["concurrency"]
    table += [
        (f"c={conc} throughput (req/s)", {n: _get(metrics, n, "c16", "rps") for n in names}, False),
        (f"c={conc} p50 (ms)", {n: _get(metrics, n, "c16", "p50_ms") for n in names}, False),
        (
            f"server CPU us/req at c={conc}",
            {n: _get(metrics, n, "c16", "cpu_us_per_request") for n in names},
            False,
        ),
        ("RSS after the run (MB)", {n: _get(metrics, n, "process", "rss_mb") for n in names}, False),
        ("spawn to ready (s)", {n: _get(metrics, n, "process", "ready_s") for n in names}, False),
    ]
    return table


def ratios(results: Stats) -> Stats:
    """tollgate / peer for every row, per peer (what the README's table quotes)."""
    peers = [n for n in results["metrics"] if n not in ("direct", "tollgate")]
    if "tollgate" not in results["metrics"]:
        return {}
    return {
        peer: {
            label: ratio(values.get("tollgate", math.nan), values.get(peer, math.nan))
            for label, values, _signed in rows(results)
        }
        for peer in peers
    }


def failures(results: Stats) -> list[str]:
    lines = []
    for name, phases in results["metrics"].items():
        for phase, stats in phases.items():
            if stats.get("errors"):
                lines.append(
                    f"  {name} {phase}: {stats['errors']} failed; last: {stats.get('last_error', '?')}"
                )
    return lines


def cells(results: Stats) -> tuple[list[str], list[list[str]]]:
    """The table as text cells: a header and one row per metric (label, per target, per ratio)."""
    names = list(results["metrics"])
    peers = [n for n in names if n not in ("direct", "tollgate")] if "tollgate" in names else []
    table_ratios = ratios(results)
    header = ["metric", *names, *(f"tollgate/{p}" for p in peers)]
    body = [
        [label, *(_fmt(values.get(n), signed) for n in names)]
        + [_fmt_ratio(table_ratios[p][label]) for p in peers]
        for label, values, signed in rows(results)
    ]
    return header, body


def render(results: Stats) -> str:
    header, body = cells(results)
    widths = [max(len(row[i]) for row in [header, *body]) + 2 for i in range(len(header))]

    def line(row: list[str]) -> str:
        return f"{row[0]:<{widths[0]}}" + "".join(
            f"{c:>{w}}" for c, w in zip(row[1:], widths[1:], strict=True)
        )

    rule = "-" * sum(widths)
    lines = [_title(results), line(header), rule, *(line(row) for row in body), rule]
    lines.append("ratio = tollgate / peer: below 1 is better for ms, CPU and MB, above 1 for req/s")
    if results.get("skipped"):
        lines += [f"skipped {name}: {why}" for name, why in results["skipped"].items()]
    noise = noise_line(results)
    if noise:
        lines.append(noise)
    problems = failures(results)
    if problems:
        lines += ["failed requests:", *problems]
    return "\n".join([*lines, *goal_lines(results)])


def markdown(results: Stats) -> str:
    """The same table in Markdown (for bench/README.md)."""
    header, body = cells(results)
    lines = ["| " + " | ".join(header) + " |", "|---" + "|--:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _title(results: Stats) -> str:
    env, plan = results["environment"], results["plan"]
    versions = ", ".join(f"{n} {t['version']}" for n, t in results["targets"].items() if n != "direct")
    return (
        f"tollgate vs peers ({results['mode']}): {plan['rounds']} interleaved rounds,"
        f" {plan['requests']} c=1 and {plan['stream_requests']} streamed requests per target,"
        f" c={plan['concurrency']} for {plan['rounds'] * plan['seconds']:g} s per target;"
        f" {env['cpus']} CPUs, load average {env['loadavg_at_start'][0]} at start,"
        f" {env['loadavg_at_end'][0]} at end\n{versions}"
    )


def _met(value: float, ok: bool) -> bool | None:
    return ok if math.isfinite(value) else None


def goals(results: Stats) -> list[tuple[str, str, bool | None]]:
    """(goal, measured, met) for the issue's targets; met is None where this run cannot tell."""
    metrics, extra = results["metrics"], added(results["metrics"])
    if "tollgate" not in metrics:
        return []
    p50, ttfb = extra["tollgate"]["c1_p50_ms"], extra["tollgate"]["stream_ttfb_p50_ms"]
    out = [
        (
            f"c=1 p50 added <= {GOAL_ADDED_P50_MS} ms",
            f"{_fmt(p50, True)} ms",
            _met(p50, p50 <= GOAL_ADDED_P50_MS),
        )
    ]
    if "portkey" in extra:
        theirs = extra["portkey"]["c1_p50_ms"]
        shown = f"{_fmt(p50, True)} vs {_fmt(theirs, True)} ms"
        out.append(("c=1 p50 added below Portkey's", shown, _met(p50 + theirs, p50 < theirs)))
        rps = ratio(_get(metrics, "tollgate", "c16", "rps"), _get(metrics, "portkey", "c16", "rps"))
        out.append(
            (
                f"c=16 req/s >= {GOAL_RPS_VS_PORTKEY}x Portkey's",
                _fmt_ratio(rps),
                _met(rps, rps >= GOAL_RPS_VS_PORTKEY),
            )
        )
    shown = f"{_fmt(ttfb, True)} ms"
    out.append(
        (f"stream first byte added <= {GOAL_TTFB_ADDED_MS} ms", shown, _met(ttfb, ttfb <= GOAL_TTFB_ADDED_MS))
    )
    out.append(_rss_goal(results.get("rss_curve")))
    out.append(("cold start <= 1.3x `import litestar`", "measured by bench/overhead.py", None))
    return out


def _rss_goal(curve: Stats | None) -> tuple[str, str, bool | None]:
    if not curve:
        return f"RSS after 20,000 requests <= {GOAL_RSS_MB:g} MB and flat", "run with --rss-curve", None
    last, growth = curve["points"][-1], curve["growth_second_half_mb"]
    rss = last["rss_mb"] if isinstance(last["rss_mb"], int | float) else math.nan
    growth = growth if isinstance(growth, int | float) else math.nan
    shown = (
        f"{_one_decimal(rss)} MB after {last['requests']}, {_one_decimal(growth, '+')} MB over the 2nd half"
    )
    met = _met(rss + growth, rss <= GOAL_RSS_MB and growth <= FLAT_MB)
    return f"RSS <= {GOAL_RSS_MB:g} MB and flat (growth <= {FLAT_MB:g} MB)", shown, met


def growth_second_half(points: list[Stats]) -> float:
    """RSS growth (MB) from the first point at or past half the curve's requests to its last point."""
    measured = [p for p in points if p.get("rss_mb") is not None]
    if not measured:
        return math.nan
    half = measured[-1]["requests"] / 2
    second = [float(p["rss_mb"]) for p in measured if p["requests"] >= half]
    return round(second[-1] - second[0], 1)


def goal_lines(results: Stats) -> list[str]:
    found = goals(results)
    if not found:
        return []
    verdict = {True: "ok", False: "MISS", None: ""}
    goal_width = max(len(goal) for goal, _shown, _met in found) + 2
    shown_width = max(len(shown) for _goal, shown, _met in found) + 2
    lines = ["issue targets for tollgate:"]
    lines += [f"  {g:<{goal_width}}{s:<{shown_width}}{verdict[met]}".rstrip() for g, s, met in found]
    curve = results.get("rss_curve")
    if curve:
        points = ", ".join(f"{p['requests']}: {_one_decimal(p['rss_mb'])}" for p in curve["points"])
        lines.append(f"tollgate RSS (MB) after N requests at c={curve['concurrency']}: {points}")
    return lines


def noise_line(results: Stats) -> str | None:
    """How much CPU the rest of the machine used while the closed loops ran (other people's work)."""
    shares = [
        m["c16"]["other_processes_cpu_share"]
        for m in results["metrics"].values()
        if isinstance(m.get("c16", {}).get("other_processes_cpu_share"), int | float)
    ]
    if not shares:
        return None
    cpus, conc = results["environment"]["cpus"], results["plan"]["concurrency"]
    return (
        f"other processes on the machine used {sum(shares) / len(shares):.2f} of its {cpus} CPUs"
        f" on average during the c={conc} runs"
    )
