"""tollgate: an OpenAI-compatible LLM gateway for AWS."""

import sys

__version__ = "0.1.0"

# Cold start: httpx's package __init__ imports its command-line tool (rich, pygments, click: ~50 ms) whenever
# those packages are installed, as they are beside litestar. tollgate never uses httpx's CLI, so the import
# is declined here; httpx catches the ImportError and defines a stub `main` instead.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
