#!/usr/bin/env bash
# Runs a command with local DynamoDB + SQS endpoints (moto server from the project venv) on a
# free port, and stops them when the command ends, fails, or is interrupted (Ctrl-C, SIGTERM).
#   local/with-endpoints.sh <command> [args…]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${PARLEY_VENV:-$here/.venv}"
python="$venv/bin/python"
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "with-endpoints: moto is not installed in $venv; run 'make venv' first" >&2
  exit 2
fi

port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
log="${PARLEY_ENDPOINT_LOG:-$here/target/moto-$port.log}"
mkdir -p "$(dirname "$log")"
# moto's server, with DynamoDB writes made atomic like the real service (see local/endpoints.py).
"$python" "$here/local/endpoints.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
child_pid=""

cleanup() {
  trap - EXIT INT TERM
  [ -n "$child_pid" ] && kill -TERM "$child_pid" 2>/dev/null && wait "$child_pid" 2>/dev/null || true
  kill -TERM "$moto_pid" 2>/dev/null && wait "$moto_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('$endpoint/moto-api/data.json', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "with-endpoints: the local endpoints did not start; see $log" >&2
    exit 1
  fi
  sleep 0.2
done

export AWS_ENDPOINT_URL_DYNAMODB="$endpoint"
export AWS_ENDPOINT_URL_SQS="$endpoint"
# moto serves S3 on the same port (path-style): the brand content bucket.
export AWS_ENDPOINT_URL_S3="$endpoint"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
echo "with-endpoints: local DynamoDB + SQS + S3 on $endpoint" >&2

# Run in the background and wait, so a signal reaches the trap at once.
"$@" &
child_pid=$!
set +e
wait "$child_pid"
status=$?
set -e
child_pid=""
exit "$status"
