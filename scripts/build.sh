#!/usr/bin/env bash
# Configures and builds fhirgw in ./build (Ninja, ccache). Extra arguments go to `cmake --build`.
set -euo pipefail
cd "$(dirname "$0")/.."
werror=OFF
[[ "${CI:-}" == "true" ]] && werror=ON
if [[ ! -f build/build.ninja ]] || [[ "$(grep -s '^FHIRGW_WERROR:BOOL=' build/CMakeCache.txt | cut -d= -f2)" != "$werror" ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFHIRGW_WERROR="$werror" >/dev/null
fi
cmake --build build "$@"
