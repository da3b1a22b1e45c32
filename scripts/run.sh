#!/usr/bin/env bash
# The README's run command: installs what is missing, builds fhirgw, and runs it.
#   scripts/run.sh                 translate every record in examples/ into var/translated/
#   scripts/run.sh ARGS...         run `fhirgw ARGS...`, e.g. scripts/run.sh translate examples/gad7.json
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh --target fhirgw
fhirgw=build/gateway/fhirgw
if (($#)); then
  exec "$fhirgw" "$@"
fi
mkdir -p var/translated
status=0
for record in examples/*.json; do
  out="var/translated/$(basename "${record%.json}").bundle.json"
  if "$fhirgw" translate "$record" >"$out"; then
    echo "translated $record -> $out ($(grep -c '"fullUrl"' "$out") resources)"
  else
    status=$?
    echo "failed: $record" >&2
  fi
done
exit $status
