#!/usr/bin/env bash
# Install the OpenAPI tools the `openapi` integration tests run: the
# openapi-spec-validator and the schemathesis fuzzer, from PyPI into a virtual
# environment at target/pyenv (git-ignored, removed by `cargo clean`).
# Idempotent: a venv that already has both tools is left as it is.
# Versions are pinned to the ones the tests were written against: schemathesis
# changes its command line between releases.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/pyenv
tools=(openapi-spec-validator==0.9.0 schemathesis==4.32.5)

if [ -x "$venv/bin/schemathesis" ] && [ -x "$venv/bin/openapi-spec-validator" ]; then
  echo "OpenAPI tools already installed in $venv"
  exit 0
fi
mkdir -p target
if ! python3 -m venv "$venv" 2>/dev/null; then
  # Debian's python3 keeps venv (ensurepip) in a package of its own.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  else
    echo "python3 -m venv failed: install Python 3 with venv support (Debian: python3-venv)" >&2
    exit 1
  fi
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "${tools[@]}"
echo "OpenAPI tools installed in $venv"
