#!/usr/bin/env bash
# Runs a command with the settings of an env file (.env / .env.example) — except that a variable
# already set in the caller's environment keeps the caller's value (CONTRACT.md: the caller's
# environment always wins), so `PARLEY_PORT=3300 make dev` listens on 3300.
#   local/with-env.sh <env file> <command> [args…]
set -euo pipefail
if [ "$#" -lt 2 ]; then
  echo "usage: local/with-env.sh <env file> <command> [args…]" >&2
  exit 2
fi
file="$1"
shift
# `export -p` prints the caller's exported variables as re-runnable declarations; replaying it
# after sourcing the file restores every value the caller set (empty ones too). Bash's own
# read-only variables (SHELLOPTS, BASHOPTS when exported) cannot be re-declared and need not be.
caller="$(export -p | grep -Ev '^declare -[a-z]*r[a-z]* ')"
set -a
# shellcheck disable=SC1090
source "$file"
set +a
eval "$caller"
exec "$@"
