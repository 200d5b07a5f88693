#!/usr/bin/env bash
# Install everything the tests need on Debian 12 (as root) and run them all: lint, types, then pytest
# against real services (Orthanc + DICOMweb, dcmtk storescp, SeaweedFS S3, Redis, headless Chromium,
# tuspy, tus-js-client). Services are started by the tests themselves on free ports.
# Extra arguments go to pytest (e.g. tests/run.sh -k checksum).
set -euo pipefail
source "$(dirname "$0")/../deploy/bootstrap.sh"
cd "$ROOT"

need_apt ca-certificates curl python3-venv orthanc orthanc-dicomweb dcmtk dicom3tools libjpeg-turbo-progs \
  redis-server chromium fonts-dejavu-core
PIP_EXTRAS=test make_venv
need_node
[ -f tests/clients/js/package-lock.json ] && npm_ci "$ROOT/tests/clients/js"
build_client

say "ruff"
"$VENV/bin/ruff" check src tests benchmarks
say "mypy --strict"
"$VENV/bin/mypy"
say "pytest"
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/pytest" -p no:cacheprovider "$@"
