"""Summarise ``bench/sqltimes`` files: per kind and name, count, p50, p95 and max ms; busy vs inline."""

from __future__ import annotations

import collections
import statistics
import sys
from pathlib import Path


def main(folder: str) -> int:
    times: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for path in Path(folder).glob("*.tsv"):
        for line in path.read_text().splitlines():
            kind, name, seconds = line.split("\t")
            times[(kind, name)].append(float(seconds))
    print(f"{'kind':<14}{'name':<28}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for (kind, name), samples in sorted(times.items()):
        samples.sort()
        p95 = samples[int(0.95 * (len(samples) - 1))]
        print(
            f"{kind:<14}{name:<28}{len(samples):>7}{statistics.median(samples) * 1000:>9.2f}"
            f"{p95 * 1000:>9.2f}{samples[-1] * 1000:>9.2f}"
        )
    busy = sum(len(v) for (kind, _), v in times.items() if kind == "inline-busy")
    done = sum(len(v) for (kind, _), v in times.items() if kind == "inline-ok")
    print(f"short writes: {busy} of {busy + done} found the lock taken and went to the pool")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
