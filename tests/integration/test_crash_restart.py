"""kill -9 of a ``tollgate serve`` process mid-stream on SQLite, then a restart on the same file.

A gateway process (spawned, uvicorn) serves three slow streams of a key with a daily USD budget and is
killed with SIGKILL in the middle: no finaliser runs, its write-ahead log is left behind. A new gateway
process opens the same file (SQLite recovers the WAL), its clock past
``TOLLGATE_RESERVATION_MAX_AGE_SECONDS``, and sweeps on its own timer; then it serves a request of its own
(which that clock must not sweep: its holds carry the same clock). Afterwards the operator's commands, run
as a user runs them (``python -m tollgate.cli``), agree: ``tollgate audit verify`` passes, ``tollgate
costs --verify`` finds every rollup equal to the audit entries, nothing stays reserved (tokens or USD),
the counters equal the audited costs, and ``PRAGMA integrity_check`` is ``ok``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.audit_helpers import request_entries
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.integration.state_helpers import AUDIT_KEY
from tests.integration.test_sweep_processes import (
    DEADLINE,
    MAX_AGE,
    RESERVED_EACH,
    STREAM_DELAY,
    STREAM_TEXTS,
    Processes,
    Stream,
    backend,
    created_key,
    run,
    settings_env,
    wait_for,
)
from tollgate.budget_periods import window
from tollgate.store.audit_base import ABANDONED
from tollgate.timeutil import utc_now


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TOLLGATE_", "AWS_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "tollgate.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_killed_gateway_restarted_on_its_file_sweeps_and_every_check_passes(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.script = Script(texts=STREAM_TEXTS, delay=STREAM_DELAY)
    with backend("sqlite", tmp_path) as shared:
        run(shared, lambda store: store.set_capacity("acme", "default", None))  # schema first
        env = {**settings_env(fake_openai), **shared.env}
        gateways = Processes(env)
        path = Path(shared.env["TOLLGATE_SQLITE_PATH"])
        try:
            doomed, url = gateways.start()
            key, key_id = created_key(url, "acme", budget_usd=1, budget_period="daily")
            period = window("daily", "UTC", utc_now()).key
            streams = [Stream(url, key) for _ in range(3)]
            threads = [s.start() for s in streams]
            for stream in streams:
                assert stream.first_chunk.wait(DEADLINE) and stream.error is None, stream.error
            doomed.kill()  # SIGKILL, mid-stream
            doomed.join(timeout=10)
            for thread in threads:
                thread.join(timeout=DEADLINE)
            assert not any(s.done for s in streams)
            assert Path(f"{path}-wal").exists()  # left behind by the killed process

            sweep_often = {"TOLLGATE_SWEEP_INTERVAL_SECONDS": "0.3"}
            _, again = gateways.start(shift_seconds=MAX_AGE + 60, sweep=True, **sweep_often)
            wait_for(lambda: len(run(shared, lambda store: request_entries(store, "acme"))) == 3, "the sweep")
            after = Stream(again, key)
            after.start().join(timeout=DEADLINE)
            assert after.done and after.error is None
        finally:
            gateways.stop_all()

    entries = run(shared, lambda store: request_entries(store, "acme"))
    statuses = {e.request_id: e.status for e in entries}
    assert statuses == {**{s.request_id: ABANDONED for s in streams}, after.request_id: "ok"}
    assert all(e.completion_tokens == RESERVED_EACH for e in entries if e.status == ABANDONED)

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ops = {**shared.env, "TOLLGATE_AUDIT_KEY": AUDIT_KEY}
    verified = cli(ops, "audit", "verify", "--tenant", "acme")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    costs = cli(ops, "costs", "--verify", "--tenant", "acme", "--json")
    assert costs.returncode == 0, costs.stdout + costs.stderr
    assert json.loads(costs.stdout)["valid"] is True
    shown = cli(ops, "budgets", "show", "--tenant", "acme", "--json")
    assert shown.returncode == 0, shown.stderr
    views = {v["kind"]: v for v in json.loads(shown.stdout)}
    assert views["tokens"]["reserved"] == 0 and views["tokens"]["spent"] == sum(
        e.prompt_tokens + e.completion_tokens for e in entries
    )
    usd = run(shared, lambda store: store.get_usd_counter("acme", f"key:{key_id}", period))
    assert usd.reserved == 0 and usd.reservations == {}
    assert usd.used == sum(e.cost_micro_usd or 0 for e in entries) > 0
