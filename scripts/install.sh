#!/usr/bin/env bash
# Installs tmuxd: builds the release binary and installs it with the systemd
# unit, the example config (never overwriting an existing one), the README,
# and the state directory. Idempotent: run it again to upgrade.
#
#   scripts/install.sh [--prefix /usr/local] [--root /] [--bin PATH] [--no-systemd]
#   scripts/install.sh --uninstall [--purge] [--root /] [--prefix /usr/local]
#   scripts/install.sh --help
#
# --prefix DIR   where the binary and docs go (absolute; default /usr/local)
# --root DIR     install under DIR (a staging root, absolute) instead of /
# --bin PATH     install this binary instead of building one (built into
#                $CARGO_TARGET_DIR, or target/, otherwise)
# --no-systemd   do not run systemctl (also implied when systemd is not running)
# --uninstall    remove the binary, unit and docs; the config and the state
#                (transcripts, tokens) stay unless --purge is given
#
# The service runs as root, on purpose: it starts each user's tmux server and
# agent as that user's own account (unix_user), which needs root. No service
# user is created for that reason; see the unit's comments for the hardening.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."

prefix=/usr/local root= bin= systemd=1 uninstall=0 purge=0
while (($#)); do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --root) root=${2%/}; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --no-systemd) systemd=0; shift ;;
    --uninstall) uninstall=1; shift ;;
    --purge) purge=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' scripts/install.sh | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (scripts/install.sh --help lists them)" >&2; exit 2 ;;
  esac
done
for dir in "$prefix" "$root"; do
  case "$dir" in
    "" | /*) ;;
    *) echo "install.sh: $dir is a relative path; --prefix and --root take absolute ones (e.g. $caller/$dir)" >&2; exit 2 ;;
  esac
done
[ -d /run/systemd/system ] && [ -z "$root" ] || systemd=0

binary=$root$prefix/bin/tmuxd
unit=$root/etc/systemd/system/tmuxd.service
config=$root/etc/tmuxd/config.toml
docs=$root$prefix/share/doc/tmuxd
state=$root/var/lib/tmuxd

if ((uninstall)); then
  if ((systemd)); then systemctl disable --now tmuxd.service 2>/dev/null || true; fi
  rm -f "$binary" "$unit"
  rm -rf "$docs"
  if ((purge)); then rm -rf "$root/etc/tmuxd" "$state"; fi
  if ((systemd)); then systemctl daemon-reload; fi
  echo "tmuxd uninstalled$( ((purge)) && echo ', config and state removed' || echo "; kept $config and $state (--purge removes them)")"
  exit 0
fi

if [ -z "$bin" ]; then
  scripts/deps.sh
  cargo build --release --bins
  bin=${CARGO_TARGET_DIR:-target}/release/tmuxd
fi
[ -x "$bin" ] || { echo "install.sh: $bin is not an executable" >&2; exit 2; }

install -D -m 0755 "$bin" "$binary"
install -d -m 0755 "$(dirname "$unit")"
sed "s|/usr/local/bin/tmuxd|$prefix/bin/tmuxd|; s|/usr/local/share/doc/tmuxd|$prefix/share/doc/tmuxd|" \
  systemd/tmuxd.service > "$unit.tmp"
chmod 0644 "$unit.tmp" && mv "$unit.tmp" "$unit"
install -D -m 0644 README.md "$docs/README.md"
install -D -m 0644 config.example.toml "$docs/config.example.toml"
if [ ! -e "$config" ]; then
  install -D -m 0640 config.example.toml "$config"
  echo "installed the example config at $config: edit it before starting"
fi
install -d -m 0700 "$state"
if ((systemd)); then systemctl daemon-reload; fi

echo "tmuxd installed: $binary"
echo "next: write the config for this machine with '$prefix/bin/tmuxd init --force --user ACCOUNT' (repeat --user; replaces the example at $config) or edit it, run '$prefix/bin/tmuxd --config /etc/tmuxd/config.toml doctor', then 'systemctl enable --now tmuxd'"
