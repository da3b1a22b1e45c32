#!/usr/bin/env bash
# Installs what fhirgw needs on Debian 12, with apt-get, and only what is missing.
#   scripts/deps.sh          build and run dependencies
#   scripts/deps.sh --test   also the test dependencies (GoogleTest, Google Benchmark, PostgreSQL,
#                            Node packages)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake ninja-build g++ pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  rapidjson-dev libabsl-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev libcpp-httplib-dev
  libpq-dev
)
with_tests=0
if [[ "${1:-}" == "--test" ]]; then
  with_tests=1
  packages+=(libgtest-dev libgmock-dev libbenchmark-dev)
  # The libFuzzer targets (scripts/fuzz.sh) build with clang and its sanitizer runtimes.
  packages+=(clang libclang-rt-14-dev)
  # The PostgreSQL store tests run their own server from these binaries (initdb into a temporary
  # directory, as the package's `postgres` user when run as root); nothing is started by hand.
  packages+=(postgresql)
  # Node.js 20 comes with the machine image; Debian's own nodejs is the fallback.
  command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ((with_tests)); then
  # The FHIR validator and the loopback FHIR server used by the tests (versions pinned in the lock file).
  if [[ ! -d tests/node/node_modules/@medplum/core || tests/node/package-lock.json -nt tests/node/node_modules ]]; then
    echo "deps: installing Node packages for tests/node" >&2
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
