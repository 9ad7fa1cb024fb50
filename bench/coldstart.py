"""Cold start: time to ready and ``-X importtime`` totals of fresh interpreters, and what tollgate adds.

Each snippet runs in a fresh ``python -c`` subprocess (after one untimed run that warms the file cache
and the ``.pyc`` files). Wall time runs from spawning the interpreter until the snippet has run (a marker
line on stdout), so interpreter teardown, which a Lambda cold start never waits for, is left out.
The import tree of the run with the median total names the heaviest imports that the tollgate snippet
adds beyond the baseline snippet.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

# What the chat Lambda runs (functions/chat/run.sh): ``uvicorn --factory tollgate.chat_entry:create_app``.
TOLLGATE = "import uvicorn; from tollgate.chat_entry import create_app; create_app()"
# The chat entry of trees before tollgate.chat_entry existed (``--before``).
TOLLGATE_APP = "import uvicorn; from tollgate.app import create_app; create_app()"
LITESTAR = "import litestar"
# The same app construction tollgate does, without tollgate: uvicorn + an empty Litestar app.
LITESTAR_UVICORN_APP = (
    "import uvicorn; from litestar import Litestar; Litestar(route_handlers=[], openapi_config=None)"
)
# What no tollgate code can take off the chat entry: uvicorn, pydantic and httpx imported, and an empty app
# of tollgate's own Litestar class (no pydantic/attrs plugins: api/litestar_app.py).
FLOOR = (
    "import uvicorn, pydantic, httpx; from tollgate.api.litestar_app import GatewayApp; "
    "GatewayApp(route_handlers=[], openapi_config=None)"
)
BARE = "pass"

_ROW = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class ImportRow:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


@dataclass(frozen=True, slots=True)
class AddedImport:
    module: str
    cumulative_ms: float
    imported_by: str


def _env(pythonpath: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def _run(code: str, *flags: str, pythonpath: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, env=_env(pythonpath), check=True
    )


def _time_to_ready(code: str, pythonpath: str | None = None) -> float:
    """Seconds from spawning the interpreter to ``code`` having run (its teardown is not cold start)."""
    marked = f"{code}\nimport sys; sys.stdout.write('ready\\n'); sys.stdout.flush()"
    started = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-c", marked], stdout=subprocess.PIPE, env=_env(pythonpath), text=True
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        ready = time.perf_counter() - started
        process.stdout.read()
    if line.strip() != "ready" or process.returncode:
        raise RuntimeError(f"cold-start snippet failed ({process.returncode}): {code}")
    return ready


def wall_times(code: str, reps: int) -> list[float]:
    """Time to ready of ``reps`` fresh interpreters running ``code``, after one warm-up run."""
    _run(code)
    return [_time_to_ready(code) for _ in range(reps)]


def parse_importtime(stderr: str) -> list[ImportRow]:
    rows: list[ImportRow] = []
    for line in stderr.splitlines():
        match = _ROW.match(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            rows.append(ImportRow(module, int(self_us), int(cumulative_us), len(indent) // 2))
    return rows


def import_trees(code: str, reps: int) -> list[list[ImportRow]]:
    """The ``-X importtime`` rows of ``reps`` fresh runs (after one warm-up)."""
    _run(code, "-X", "importtime")
    return [parse_importtime(_run(code, "-X", "importtime").stderr) for _ in range(reps)]


def total_ms(rows: list[ImportRow]) -> float:
    return sum(row.self_us for row in rows) / 1000


def median_tree(trees: list[list[ImportRow]]) -> list[ImportRow]:
    ordered = sorted(trees, key=total_ms)
    return ordered[len(ordered) // 2]


def _parents(rows: list[ImportRow]) -> dict[int, ImportRow | None]:
    """Row index -> the row that imported it. importtime prints children before their parent."""
    parents: dict[int, ImportRow | None] = {}
    open_rows: list[ImportRow] = []  # open_rows[d] = the enclosing row at depth d, walking backwards
    for index in range(len(rows) - 1, -1, -1):
        row = rows[index]
        del open_rows[row.depth :]
        parents[index] = open_rows[row.depth - 1] if row.depth and len(open_rows) >= row.depth else None
        open_rows.append(row)
    return parents


def _package(module: str) -> str:
    return module.split(".", 1)[0]


def added_imports(base: list[ImportRow], rows: list[ImportRow], own_package: str) -> list[AddedImport]:
    """Subtrees absent from ``base`` and not the project's own modules, heaviest first."""
    known = {row.module for row in base}
    parents = _parents(rows)
    added: list[AddedImport] = []
    for index, row in enumerate(rows):
        if row.module in known or _package(row.module) == own_package:
            continue
        parent = parents[index]
        if parent is not None and parent.module not in known and _package(parent.module) != own_package:
            continue  # inside a subtree already counted at its root
        importer = parent.module if parent is not None else "<top level / create_app()>"
        added.append(AddedImport(row.module, row.cumulative_us / 1000, importer))
    return sorted(added, key=lambda item: item.cumulative_ms, reverse=True)


def added_by_package(base: list[ImportRow], rows: list[ImportRow]) -> list[tuple[str, float]]:
    """Self time (ms) of the modules absent from ``base``, summed per top-level package."""
    known = {row.module for row in base}
    totals: dict[str, float] = {}
    for row in rows:
        if row.module not in known:
            package = _package(row.module)
            totals[package] = totals.get(package, 0.0) + row.self_us / 1000
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)


def own_modules(rows: list[ImportRow], own_package: str) -> list[tuple[str, float]]:
    """Self time (ms) of the project's own modules, heaviest first."""
    own = [(row.module, row.self_us / 1000) for row in rows if _package(row.module) == own_package]
    return sorted(own, key=lambda item: item[1], reverse=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


Snippets = dict[str, tuple[str, str | None]]


def interleaved(snippets: Snippets, rounds: int, reps: int) -> dict[str, list[float]]:
    """Time to ready (ms) of each ``name -> (code, PYTHONPATH or None)``, ``rounds`` rounds of ``reps`` starts
    each, the snippets taking turns in every round (after one warm-up run each), so load drifts on a shared
    machine reach every snippet alike."""
    for code, pythonpath in snippets.values():
        _run(code, pythonpath=pythonpath)
    times: dict[str, list[float]] = {name: [] for name in snippets}
    for _ in range(rounds):
        for name, (code, pythonpath) in snippets.items():
            times[name] += [_time_to_ready(code, pythonpath) * 1000 for _ in range(reps)]
    return times


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Cold start of the chat entry against `import litestar`.")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3, help="starts of each snippet per round")
    parser.add_argument(
        "--before", metavar="TREE", help="also time the chat entry of another checkout (its layers/tollgate)"
    )
    args = parser.parse_args()
    snippets: Snippets = {
        "import litestar": (LITESTAR, None),
        "uvicorn + empty Litestar app": (LITESTAR_UVICORN_APP, None),
        "uvicorn+pydantic+httpx+empty app": (FLOOR, None),
        "tollgate chat entry": (TOLLGATE, None),
    }
    if args.before:
        tree = os.path.join(args.before, "layers", "tollgate")
        entry = TOLLGATE if os.path.exists(os.path.join(tree, "tollgate", "chat_entry.py")) else TOLLGATE_APP
        snippets["chat entry of --before"] = (entry, tree)
    times = interleaved(snippets, args.rounds, args.reps)
    base = median(times["import litestar"])
    print(f"{args.rounds} interleaved rounds x {args.reps} starts, medians of time to ready:")
    for name, values in times.items():
        print(f"  {name:34} {median(values):7.1f} ms  {median(values) / base:5.2f}x import litestar")


if __name__ == "__main__":
    main()
