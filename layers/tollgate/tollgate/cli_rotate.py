"""``tollgate keys rotate KEY_ID [--grace-seconds N]``: a new secret for the same key, printed once.

The old secret works for the grace period (default 0: it stops now), then answers 401; instances that
cached it accept it at most ``TOLLGATE_KEY_CACHE_SECONDS`` after the rotation (``tollgate.key_rotation``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .api.admin import key_view
from .cli import _print, _with_store
from .cli_args import count_type, name_type
from .config import Settings
from .errors import BadRequest, NotFound
from .key_rotation import MAX_GRACE_SECONDS, rotate
from .names import printable
from .timeutil import utc_now


def keys_rotate(args: argparse.Namespace) -> int:
    async def run(store: Any, _: Settings) -> dict[str, Any]:
        secret, record, until = await rotate(store, args.key_id, args.grace_seconds, utc_now())
        return {"key": secret, **key_view(record), "old_key_valid_until": until}

    try:
        view = _with_store(run)
    except (NotFound, BadRequest) as exc:
        print(f"tollgate: {printable(exc.message)}", file=sys.stderr)
        return 2
    if args.json:
        _print(view)
    else:
        print(
            f"{view['key']}\n\nkey_id {view['key_id']}, tenant {view['tenant']}: the old key works until "
            f"{view['old_key_valid_until']}. This is the only time the new key is shown."
        )
    return 0


def add_rotate_command(keys: Any) -> None:
    rotate_ = keys.add_parser("rotate", help="a new secret for a key (printed once); the old one expires")
    rotate_.add_argument("key_id", type=name_type("key_id"), help="the key's id (key_..., from keys list)")
    rotate_.add_argument(
        "--grace-seconds",
        type=count_type(0, MAX_GRACE_SECONDS),
        default=0,
        metavar="N",
        help=f"the old secret keeps working for N seconds (0..{MAX_GRACE_SECONDS}; default 0)",
    )
    rotate_.add_argument("--json", action="store_true", help="print JSON")
    rotate_.set_defaults(handler=keys_rotate)
