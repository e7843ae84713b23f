#!/usr/bin/env bash
# What running tmuxd from this source tree needs, on Debian/Ubuntu, installed
# when missing: tmux (the daemon's only runtime dependency) and Node.js/npm
# (cargo's build script bundles the page from the npm registry; a tmuxd
# binary copied to another machine needs tmux only). What the tests need
# besides is scripts/test-deps.sh. Idempotent.
set -euo pipefail
case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    echo "usage: scripts/deps.sh"
    exit 0
    ;;
  "") ;;
  *)
    echo "scripts/deps.sh: unknown argument $1 (see --help)" >&2
    exit 2
    ;;
esac

missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if ((${#missing[@]})); then
  sudo=()
  if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
  echo "scripts/deps.sh: installing ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
