"""Which DynamoDB calls get slow under one tenant? bench/scale.py with every gateway's boto3 calls timed.

    python bench/optimes_report.py --levels 8 --seconds 5 --rate 0      # dynalite, N = 8, ~40 s

Runs ``bench/scale.py --stores dynamodb`` with ``bench/optimes`` first on PYTHONPATH (its
``sitecustomize`` times each boto3 call of the gateway processes, see there), then prints per operation
and load (one tenant / N tenants) and outcome: calls, p50, p95 and mean ms, and the calls per answered
request. The warm-up and the closing checks are included; the bench process's own calls are not.
"""

from __future__ import annotations

import collections
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="tollgate-optimes-") as out:
        env = dict(os.environ, BENCH_OPTIMES=out)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH / "optimes"), env.get("PYTHONPATH")]))
        argv = [sys.executable, str(BENCH / "scale.py"), "--stores", "dynamodb", *argv]
        bench = subprocess.Popen(argv, env=env)
        bench.wait()
        times: dict[tuple[str, str, str], list[float]] = collections.defaultdict(list)
        for path in Path(out).glob("*.tsv"):
            if path.stem == str(bench.pid):
                continue
            for line in path.read_text().splitlines():
                operation, who, outcome, seconds = line.split("\t")
                times[(operation, who, outcome)].append(float(seconds))
    print(
        f"\n{'operation':<40}{'load':<8}{'outcome':<34}{'calls':>7}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}"
    )
    for (operation, who, outcome), samples in sorted(times.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        samples.sort()
        p95 = samples[int(0.95 * (len(samples) - 1))]
        print(
            f"{operation:<40}{who:<8}{outcome:<34}{len(samples):>7}{statistics.median(samples) * 1000:>9.1f}"
            f"{p95 * 1000:>9.1f}{statistics.fmean(samples) * 1000:>9.1f}"
        )
    return bench.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
