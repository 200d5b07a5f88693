#!/usr/bin/env bash
# Shared set-up steps for deploy/serve.sh and tests/run.sh on Debian 12 (run as root, or with sudo
# available). Idempotent: each step checks first, so a second run is fast.
#
#   source deploy/bootstrap.sh
#   need_apt pkg...        install Debian packages that are missing (one apt-get update per run)
#   make_venv              create .venv and install the package (extras in $PIP_EXTRAS)
#   need_node              make sure node >= 20 and npm are there
#   build_client           npm ci + npm run build in client/ (skipped when the build is current)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${RELAYPACS_VENV:-$ROOT/.venv}
export DEBIAN_FRONTEND=noninteractive
_apt_updated=0

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  if [ $_apt_updated = 0 ]; then as_root apt-get update -qq; _apt_updated=1; fi
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_bin() {
  # Python 3.11+ is required; Debian 12's python3 is 3.11.
  for c in "${PYTHON:-}" python3.11 python3; do
    [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo "$c"; return; }
  done
  need_apt python3 >/dev/null; echo python3
}

make_venv() {
  local py; py=$(python_bin)
  if [ ! -x "$VENV/bin/python" ]; then
    "$py" -m venv "$VENV" 2>/dev/null || { need_apt python3-venv; rm -rf "$VENV"; "$py" -m venv "$VENV"; }
  fi
  local stamp="$VENV/.relaypacs-installed" want
  want="$(cat "$ROOT/pyproject.toml" | sha1sum | cut -c1-16)-${PIP_EXTRAS:-none}"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing relaypacs-tus into $VENV${PIP_EXTRAS:+ (extras: $PIP_EXTRAS)}"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e "$ROOT${PIP_EXTRAS:+[$PIP_EXTRAS]}"
    echo "$want" > "$stamp"
  fi
}

need_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    need_apt nodejs npm
  fi
  local major; major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    say "node $(node --version) is too old for the PWA build (Vite needs node >= 20); install node 20+ and re-run"
    return 1
  fi
}

npm_ci() {  # npm_ci DIR: install exactly the lock file, once per lock-file change
  local dir=$1 stamp="$1/node_modules/.relaypacs-lock"
  local want; want=$(sha1sum "$dir/package-lock.json" | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "npm ci in ${dir#"$ROOT"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" > "$stamp"
  fi
}

build_client() {
  [ -f "$ROOT/client/package-lock.json" ] || { say "client/ has no package-lock.json yet; the PWA is not built"; return 0; }
  need_node
  npm_ci "$ROOT/client"
  local stamp="$ROOT/client/node_modules/.relaypacs-build" want
  want=$(cd "$ROOT/client" && find . -path ./node_modules -prune -o -path ./dist -prune -o -type f -print0 | sort -z | xargs -0 sha1sum | sha1sum | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$ROOT/src/relaypacs_tus/web/static" ]; then
    say "building the PWA (client/)"
    (cd "$ROOT/client" && npm run build --silent >/dev/null)
    echo "$want" > "$stamp"
  fi
}
