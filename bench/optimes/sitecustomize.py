"""Bench-only: time every boto3 call of a gateway process (on the path only when BENCH_OPTIMES is set).

``bench/optimes_report.py`` runs ``bench/scale.py`` with this directory first on PYTHONPATH and
``BENCH_OPTIMES=<dir>``: each process appends one line per DynamoDB call to ``<dir>/<pid>.tsv``:
operation, whose tenant ("one" for the one-tenant load, "spread" for the N tenants, "-" otherwise), the
outcome (ok or the error code) and the seconds the call took (botocore's whole call: serialise, HTTP round
trip, parse). Nothing of the request (keys, prompts) is written.
"""

from __future__ import annotations

import atexit
import os
import re
import time
from typing import Any

_DIR = os.environ.get("BENCH_OPTIMES")
_SPREAD = re.compile(r"[#'\"]t\d+-")

if _DIR:
    import botocore.client
    from botocore.exceptions import ClientError

    _lines: list[str] = []
    _out = open(os.path.join(_DIR, f"{os.getpid()}.tsv"), "a", encoding="utf-8")  # noqa: SIM115

    def _flush() -> None:
        _out.write("".join(_lines))
        _out.flush()
        _lines.clear()

    atexit.register(_flush)
    _original = botocore.client.BaseClient._make_api_call

    def _timed(self: Any, operation: str, params: dict[str, Any]) -> Any:
        text = repr(params)
        who = "one" if "one-" in text else "spread" if _SPREAD.search(text) else "-"
        pk = params.get("Key", params.get("Item", {})).get("PK", {}).get("S", "")
        kind = pk.split("#", 1)[0] if pk else "-"
        sk = params.get("Key", params.get("Item", {})).get("SK", {}).get("S", "")
        kind += "/" + (sk.split("#", 1)[0][:12] if not sk[:1].isdigit() else "<n>")
        outcome = "ok"
        began = time.perf_counter()
        try:
            return _original(self, operation, params)
        except ClientError as error:
            outcome = error.response.get("Error", {}).get("Code", "error")
            raise
        finally:
            _lines.append(f"{operation} {kind}\t{who}\t{outcome}\t{time.perf_counter() - began:.6f}\n")
            if len(_lines) >= 50:
                _flush()

    botocore.client.BaseClient._make_api_call = _timed  # type: ignore[method-assign]
