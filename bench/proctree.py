"""Memory and CPU of a server's whole process tree, from Linux ``/proc`` (None elsewhere).

A peer may fork workers or helpers (a Node runtime, a Python proxy started through a CLI), so its footprint is
the sum over the process it started and all of that process's descendants.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (which may hold spaces)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive now (empty when ``pid`` is gone)."""
    if _stat_fields(pid) is None:
        return []
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def rss_bytes(pid: int) -> int | None:
    """Resident memory of the tree (``VmRSS`` summed); None when it cannot be read."""
    total = 0
    pids = tree(pid)
    for member in pids:
        try:
            status = (PROC / str(member) / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total if pids else None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the tree's live processes have used so far; None when ``pid`` is gone."""
    pids = tree(pid)
    ticks = 0
    for member in pids:
        fields = _stat_fields(member)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK") if pids else None
