#!/usr/bin/env bash
# Install RelayPACS-tus on this machine (Debian 12) and run it on embedded defaults: uploads, records
# and the audit log go to ./data, no external service is needed. Extra arguments go to
# `relaypacs-tus serve` (e.g. --port 9000, --host 0.0.0.0); RELAYPACS_* variables work too.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
make_venv
build_client || say "continuing without the PWA"
cd "$ROOT"
exec "$VENV/bin/relaypacs-tus" serve "$@"
