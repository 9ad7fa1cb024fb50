#!/bin/bash
# Lambda Web Adapter entry for the chat function: uvicorn on the adapter's port, one worker.
# Layer binaries are not on PATH, so uvicorn runs as a module of the runtime's python.
# tollgate.chat_entry builds tollgate.app.create_app() with the garbage collector paused (cold start).
exec python -m uvicorn --factory tollgate.chat_entry:create_app \
  --host 127.0.0.1 --port "${AWS_LWA_PORT:-${PORT:-8080}}" \
  --no-access-log --log-level warning --timeout-graceful-shutdown 5
