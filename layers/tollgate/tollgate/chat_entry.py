"""The chat Lambda's entry (functions/chat/run.sh): ``uvicorn --factory tollgate.chat_entry:create_app``.

The same app as ``tollgate.app.create_app()``; what differs is the cold start. Importing tollgate and building
the app allocate ~120,000 objects that live as long as the process, and the cyclic garbage collector scans
them again and again while they are made (~170 collections, one full one of ~20 ms: ~45 ms of a ~370 ms
start). So the collector is paused while the app module is imported and the app is built, and what exists
then is frozen (``gc.freeze``: moved to a generation that later collections skip, so a full collection
while serving does not walk the imported modules either). A build leaves ~1,300 unreachable objects
behind (measured); frozen, they stay, once per process.

The app module is imported inside the factory, so the pause covers it; uvicorn imports this module first.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar import Litestar


def create_app() -> Litestar:
    """``tollgate.app.create_app()`` with the collector paused while it is imported and built."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        from .app import create_app as build

        return build()
    finally:
        if enabled:
            gc.freeze()
            gc.enable()
