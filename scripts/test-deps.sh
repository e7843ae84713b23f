#!/usr/bin/env bash
# What the tests need on Debian/Ubuntu, installed when missing, after what
# running needs (scripts/deps.sh): util-linux's `script` (gives `tmuxd
# attach` a terminal), Chromium and ChromeDriver (the browser tests),
# systemd-analyze (the unit test), useradd (tests run agents as throwaway
# accounts), Postfix and Dovecot (scripts/mail-testbed.sh), nginx (an
# authenticating proxy in front of tmuxd, and a cluster's front with HAProxy),
# bubblewrap (sandboxed agents),
# asciinema from
# PyPI (an export is played), and from npm, pinned, each in its own prefix
# under /opt/tmuxd-test: the Claude Code and Codex CLIs (the agent tests)
# and oidc-provider (an OpenID Connect provider for the sign-in tests);
# Synapse from PyPI (a Matrix homeserver), in a virtual environment there,
# and kubernetes-validate from PyPI (the Kubernetes schemas, offline).
# Idempotent.
set -euo pipefail
case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    echo "usage: scripts/test-deps.sh"
    exit 0
    ;;
  "") ;;
  *)
    echo "scripts/test-deps.sh: unknown argument $1 (see --help)" >&2
    exit 2
    ;;
esac
"$(dirname "$0")/deps.sh"

missing=()
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v useradd >/dev/null 2>&1 || missing+=(passwd)
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd dovecot-lmtpd)
command -v postfix >/dev/null 2>&1 || missing+=(postfix)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

sudo=()
if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
if ((${#missing[@]})); then
  echo "scripts/test-deps.sh: installing ${missing[*]}" >&2
  # Postfix asks how to configure itself unless told: not at all (the mail
  # testbed brings its own config).
  echo "postfix postfix/main_mailer_type select No configuration" | "${sudo[@]}" debconf-set-selections
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! python3 -c 'import asciinema' >/dev/null 2>&1; then
  echo "scripts/test-deps.sh: installing asciinema from PyPI" >&2
  python3 -m pip install -q asciinema==2.4.0 2>/dev/null ||
    python3 -m pip install -q --break-system-packages asciinema==2.4.0
fi
# The real Claude Code CLI (the agent tests run it offline against a
# stand-in of the Messages API); pinned, in its own prefix.
claude=/opt/tmuxd-test/claude-code-2.1.332
if [ ! -x "$claude/node_modules/.bin/claude" ]; then
  echo "scripts/test-deps.sh: installing @anthropic-ai/claude-code@2.1.332 from npm" >&2
  "${sudo[@]}" mkdir -p "$claude"
  "${sudo[@]}" npm install --prefix "$claude" --no-audit --no-fund @anthropic-ai/claude-code@2.1.332 >/dev/null
fi
# The real Codex CLI, the same way (against a stand-in of the Responses API).
codex=/opt/tmuxd-test/codex-0.171.0
if [ ! -x "$codex/node_modules/.bin/codex" ]; then
  echo "scripts/test-deps.sh: installing @openai/codex@0.171.0 from npm" >&2
  "${sudo[@]}" mkdir -p "$codex"
  "${sudo[@]}" npm install --prefix "$codex" --no-audit --no-fund @openai/codex@0.171.0 >/dev/null
fi
# A real OpenID Connect provider (the sign-in tests), the same way.
oidc=/opt/tmuxd-test/oidc-provider-9.13.3
if [ ! -d "$oidc/node_modules/oidc-provider" ]; then
  echo "scripts/test-deps.sh: installing oidc-provider@9.13.3 from npm" >&2
  "${sudo[@]}" mkdir -p "$oidc"
  "${sudo[@]}" npm install --prefix "$oidc" --no-audit --no-fund oidc-provider@9.13.3 >/dev/null
fi
# A real Matrix homeserver (the Matrix channel's tests): Synapse from
# PyPI, pinned, in a virtual environment of its own.
synapse=/opt/tmuxd-test/synapse-venv
if [ ! -x "$synapse/bin/register_new_matrix_user" ]; then
  echo "scripts/test-deps.sh: installing matrix-synapse==1.163.2 from PyPI" >&2
  "${sudo[@]}" python3 -m venv "$synapse"
  "${sudo[@]}" "$synapse/bin/pip" install -q matrix-synapse==1.163.2
fi
# The Kubernetes manifests are checked against the Kubernetes schemas
# offline: kubernetes-validate carries them; pinned, in its own venv.
kv=/opt/tmuxd-test/kubernetes-validate-1.37.0
if [ ! -x "$kv/bin/kubernetes-validate" ]; then
  echo "scripts/test-deps.sh: installing kubernetes-validate==1.37.0 from PyPI" >&2
  "${sudo[@]}" python3 -m venv "$kv"
  "${sudo[@]}" "$kv/bin/pip" install -q kubernetes-validate==1.37.0
fi
