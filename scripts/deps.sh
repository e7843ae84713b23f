#!/usr/bin/env bash
# Installs what tmuxd and its tests need on Debian/Ubuntu, when missing:
# tmux (the daemon's only runtime dependency), util-linux's `script` (gives
# `tmuxd attach` a terminal in the tests), Chromium and ChromeDriver (the
# browser test), and Node.js/npm (build.rs builds the page). Idempotent.
set -euo pipefail

missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if ((${#missing[@]} == 0)); then
  exit 0
fi
sudo=()
if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
echo "scripts/deps.sh: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
