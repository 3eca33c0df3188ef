#!/usr/bin/env bash
# Install the PostgREST client libraries that tests/it/clients.rs runs against
# the real binary: postgrest-js (npm, from the lockfile) and postgrest-py
# (PyPI, in a venv at target/pyenv-clients). Idempotent: a second run only
# checks what is there. Needs node >= 20 with npm, and python3 with venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# JavaScript: `npm ci` installs exactly the lockfile; the first run creates it.
# A copy of the lockfile in node_modules marks what was installed last.
cd "$here/js"
stamp=node_modules/.pgrpc-installed-lock.json
if [ ! -f package-lock.json ]; then
  npm install --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
elif ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

# Python: a venv of its own; pip runs again only when requirements.txt changed.
venv="$root/target/pyenv-clients"
req="$here/py/requirements.txt"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s "$req" "$venv/installed-requirements.txt"; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/installed-requirements.txt"
fi

echo "clients ready: $(cd "$here/js" && node -p 'require("@supabase/postgrest-js/package.json").version' 2>/dev/null || echo '?') (postgrest-js), $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("postgrest"))') (postgrest-py)"
