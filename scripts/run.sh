#!/usr/bin/env bash
# The README's run command: installs what is missing, builds fhirgw, and runs it.
#   scripts/run.sh                 `fhirgw serve` with the embedded defaults (gRPC 127.0.0.1:50051,
#                                  HTTP 127.0.0.1:8080, SQLite log and file outbox under ./var)
#   scripts/run.sh ARGS...         `fhirgw ARGS...`, e.g. scripts/run.sh translate examples/gad7.json
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh --target fhirgw
if (($#)); then
  exec build/gateway/fhirgw "$@"
fi
exec build/gateway/fhirgw serve
