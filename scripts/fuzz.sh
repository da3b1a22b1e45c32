#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang, ASan and UBSan in ./build-fuzz (a separate
# configure: the main build uses g++), then runs each for N seconds from its committed seed corpus
# (tests/fuzz/corpus/<target>, only read; new inputs go to a temporary directory).
#   scripts/fuzz.sh                      every target, 10 s each
#   scripts/fuzz.sh --seconds 3600 fhir_reader
# A crash leaves its input in build-fuzz/<target>-crash-*: fix the bug and add the input to the
# target's corpus. Needs clang and libclang-rt-14-dev (scripts/deps.sh --test).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=10
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=(record_reader fhir_reader ehr_response config_reader)

# Every UBSan finding stops the run, except those tests/fuzz/ubsan.supp names (pointer-overflow must
# be recoverable to be suppressible: Debian's RapidJSON 1.1.0 adds to a null stack pointer).
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
flags+=" -fsanitize-recover=pointer-overflow"
if [[ ! -f build-fuzz/build.ninja ]] ||
  [[ "$(grep -s '^CMAKE_CXX_FLAGS:STRING=' build-fuzz/CMakeCache.txt | cut -d= -f2-)" != "$flags" ]]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFHIRGW_FUZZ=ON -DFHIRGW_BUILD_TESTS=OFF -DCMAKE_CXX_FLAGS="$flags" >/dev/null
fi
export UBSAN_OPTIONS="suppressions=$PWD/tests/fuzz/ubsan.supp:halt_on_error=1:print_stacktrace=1"
cmake --build build-fuzz --target "${targets[@]/%/_fuzz}"

for target in "${targets[@]}"; do
  work=$(mktemp -d)
  echo "fuzz: ${target} for ${seconds} s" >&2
  status=0
  build-fuzz/tests/fuzz/"${target}_fuzz" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="build-fuzz/${target}-" \
    "$work" "tests/fuzz/corpus/${target}" 2>"build-fuzz/${target}.log" || status=$?
  rm -rf "$work"
  tail -n 12 "build-fuzz/${target}.log" | grep -E "stat::number_of_executed_units|Done|ERROR|SUMMARY" >&2 || true
  if ((status != 0)); then
    echo "fuzz: ${target} failed (exit ${status}); see build-fuzz/${target}.log" >&2
    exit 1
  fi
done
