"""One hot item vs many items: does the DynamoDB emulator serialise writes to one item?

    python bench/item_contention.py                       # dynalite and moto server, 8 writers, 4 s each
    python bench/item_contention.py --writers 2,8,16 --seconds 4 --servers dynalite

K writers (threads, one boto3 client each; a writer has one request in flight at a time) run
``UpdateItem ... ADD n :one`` with ``ReturnValues=ALL_NEW`` (the shape of tollgate's pool and rollup
updates) for a fixed time, either all on ONE item or each on its own item of the same partition
(``same-pk``: same partition key, other sort key) or of its own partition (``own-pk``). Per server, K and
shape: updates/s, p50 and p95 of one update, and whether the counters add up. The client side (threads,
boto3) is the same in every shape, so a difference between shapes is the server's handling of one item.

Servers, started here on 127.0.0.1 only and stopped at the end: dynalite (``bash scripts/dynalite.sh
install``; in memory) and moto's server (``moto_server``). Prints a table and writes
``bench/results/item_contention.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from audit_contention import REGION, _free_port, dynalite, serving

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
TABLE = "contention"
SHAPES = ("one-item", "same-pk", "own-pk")


@contextlib.contextmanager
def moto(log_path: Path) -> Iterator[str]:
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = _free_port()
    argv = [exe, "-H", "127.0.0.1", "-p", str(port)]
    with serving("moto_server", argv, port, log_path, timeout=30) as url:
        yield url


def client(url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=4),
    )


def create_table(url: str) -> None:
    db = client(url)
    with contextlib.suppress(db.exceptions.ResourceInUseException):
        db.create_table(
            TableName=TABLE,
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    db.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})


def key_for(shape: str, run: str, writer: int) -> dict[str, Any]:
    if shape == "one-item":
        return {"PK": {"S": f"{run}#hot"}, "SK": {"S": "item"}}
    if shape == "same-pk":
        return {"PK": {"S": f"{run}#hot"}, "SK": {"S": f"item{writer}"}}
    return {"PK": {"S": f"{run}#w{writer}"}, "SK": {"S": "item"}}


def run_shape(url: str, shape: str, writers: int, seconds: float, background: int) -> dict[str, Any]:
    run = f"{shape}-{writers}-{time.monotonic_ns()}"
    total = writers + background
    clients = [client(url) for _ in range(total)]
    for db in clients:  # connect and warm each client outside the timed part
        db.describe_table(TableName=TABLE)
    latencies: list[list[float]] = [[] for _ in range(total)]
    errors = [0] * total
    start = threading.Barrier(total + 1)
    stop_at = [0.0]

    def writer(index: int) -> None:
        key = key_for(shape, run, index) if index < writers else key_for("own-pk", f"bg{run}", index)
        db, mine = clients[index], latencies[index]
        start.wait()
        while time.monotonic() < stop_at[0]:
            began = time.perf_counter()
            try:
                db.update_item(
                    TableName=TABLE,
                    Key=key,
                    UpdateExpression="ADD #n :one",
                    ExpressionAttributeNames={"#n": "n"},
                    ExpressionAttributeValues={":one": {"N": "1"}},
                    ReturnValues="ALL_NEW",
                )
            except Exception:
                errors[index] += 1
                continue
            mine.append(time.perf_counter() - began)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(total)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + seconds
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    samples = sorted(x for mine in latencies[:writers] for x in mine)
    background_done = sum(len(mine) for mine in latencies[writers:])
    done = len(samples)
    keys = {json.dumps(key_for(shape, run, i), sort_keys=True) for i in range(writers)}
    counted = sum(
        int(clients[0].get_item(TableName=TABLE, Key=json.loads(k), ConsistentRead=True)["Item"]["n"]["N"])
        for k in keys
    )
    return {
        "shape": shape,
        "writers": writers,
        "updates": done,
        "per_s": round(done / elapsed, 1),
        "p50_ms": round(statistics.median(samples) * 1000, 2) if samples else None,
        "p95_ms": round(samples[int(0.95 * (done - 1))] * 1000, 2) if samples else None,
        "errors": sum(errors),
        "background_writers": background,
        "background_per_s": round(background_done / elapsed, 1),
        "counted_ok": counted == done,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="dynalite,moto")
    parser.add_argument("--writers", default="8", help="comma-separated writer counts")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument(
        "--background",
        type=int,
        default=0,
        help="writers on items of their own, running alongside (the other tenants)",
    )
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []
    for server in args.servers.split(","):
        with contextlib.ExitStack() as stack:
            log = RESULTS / f"item_contention_{server}.log"
            url = stack.enter_context(dynalite(log) if server == "dynalite" else moto(log))
            create_table(url)
            for writers in (int(w) for w in args.writers.split(",")):
                for shape in SHAPES:
                    row = {"server": server, **run_shape(url, shape, writers, args.seconds, args.background)}
                    rows.append(row)
                    print(
                        f"{server:8} K={writers:<3} {shape:9} {row['per_s']:8.1f}/s  p50 {row['p50_ms']} ms"
                        f"  p95 {row['p95_ms']} ms  errors {row['errors']}  counted {row['counted_ok']}"
                        f"  background {row['background_per_s']}/s",
                        flush=True,
                    )
    (RESULTS / "item_contention.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
