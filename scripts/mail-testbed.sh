#!/usr/bin/env bash
# Real mail servers on loopback for the email bridge's tests: Postfix (SMTP)
# delivers through Dovecot LMTP into Maildirs that Dovecot serves over IMAP
# (with IDLE). Everything lives under DIR and binds 127.0.0.1 only; nothing
# can leave (external transports are `error:`). Facts: ../shared/MAIL-TESTBED.md.
#
#   scripts/mail-testbed.sh start DIR   # prints KEY=VALUE lines (ports, login)
#   scripts/mail-testbed.sh stop DIR    # stops both servers (by pid)
#
# Any user@example.test is a mailbox (plus-addresses keep their tag in To:);
# every mailbox logs in to IMAP as its address with the password below.
# bounce@example.test always bounces (a real DSN with `Return-Path: <>`).
# MAIL_TESTBED_PIPE_TO/_USER/_ARGV (all three) add a pipe(8) transport for
# one address, as the README's MTA delivery sets it up. MAIL_TESTBED_TRANSPORT,
# _MASTER and _MAIN name files whose lines are added to Postfix's transport
# table, master.cf and main.cf (a cluster's transports, made by `tmuxd
# router-config --postfix`).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
password=testbed-password

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

stop() {
  if [ -f "$dir/postfix/etc/main.cf" ]; then
    postfix -c "$dir/postfix/etc" stop >/dev/null 2>&1 || true
  fi
  for pidfile in "$dir/postfix/queue/pid/master.pid" "$dir/dovecot/run/master.pid"; do
    if [ -f "$pidfile" ]; then
      pid=$(tr -d ' \n' < "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    fi
  done
}

case "$cmd" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac

command -v dovecot >/dev/null && command -v postfix >/dev/null || {
  echo "mail-testbed: dovecot and postfix are required (scripts/test-deps.sh installs them)" >&2
  exit 1
}
dir=$(realpath -m "$dir")
mkdir -p "$dir"
chmod 755 "$dir"
smtp=$(free_port) imap=$(free_port) lmtp=$(free_port)

# --- Dovecot ----------------------------------------------------------------
mkdir -p "$dir/dovecot/run" "$dir/dovecot/state" "$dir/mail"
chown nobody:nogroup "$dir/mail"
cat > "$dir/dovecot/dovecot.conf" <<EOF
protocols = imap lmtp
listen = 127.0.0.1
base_dir = $dir/dovecot/run
state_dir = $dir/dovecot/state
log_path = $dir/dovecot/log
info_log_path = $dir/dovecot/log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = static
  args = password=$password
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$dir/mail/%u
}
mail_location = maildir:~/Maildir
recipient_delimiter = +
lmtp_hdr_delivery_address = original
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lmtp
  }
}
service auth {
  unix_listener auth-userdb {
    mode = 0600
  }
}
EOF
# Detached stdio: dovecot's master would otherwise keep the caller's pipes.
dovecot -c "$dir/dovecot/dovecot.conf" </dev/null >>"$dir/dovecot/start.log" 2>&1

# --- Postfix ----------------------------------------------------------------
etc=$dir/postfix/etc
mkdir -p "$etc" "$dir/postfix/queue" "$dir/postfix/data"
chown root:root "$dir/postfix/queue" && chmod 755 "$dir/postfix/queue"
chown postfix:postfix "$dir/postfix/data"
cat > "$etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/postfix/queue
data_directory = $dir/postfix/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/postfix/maillog
maillog_file_prefixes = $dir/postfix
myhostname = mx.example.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
virtual_mailbox_domains = example.test
virtual_transport = lmtp:inet:127.0.0.1:$lmtp
virtual_mailbox_maps = static:ok
default_transport = error:the testbed delivers nowhere else
relay_transport = error:the testbed delivers nowhere else
transport_maps = texthash:$etc/transport
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtp_dns_support_level = disabled
# Accept mail for the bouncing mailbox, then bounce it: a real DSN.
smtpd_reject_unlisted_recipient = no
recipient_delimiter = +
biff = no
alias_maps =
alias_database =
EOF
echo "bounce@example.test error:5.1.1 this mailbox always bounces" > "$etc/transport"
cat > "$etc/master.cf" <<EOF
127.0.0.1:$smtp inet n - n - - smtpd
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
# Optionally, the README's pipe delivery to tmuxd: mail for
# $MAIL_TESTBED_PIPE_TO (and its +tags) goes to `$MAIL_TESTBED_PIPE_ARGV`,
# run by pipe(8) as the unprivileged $MAIL_TESTBED_PIPE_USER.
if [ -n "${MAIL_TESTBED_PIPE_TO:-}" ]; then
  echo "$MAIL_TESTBED_PIPE_TO tmuxd:" >> "$etc/transport"
  echo "tmuxd_destination_recipient_limit = 1" >> "$etc/main.cf"
  printf 'tmuxd     unix - n n - - pipe\n  flags=DR user=%s argv=%s\n' \
    "$MAIL_TESTBED_PIPE_USER" "$MAIL_TESTBED_PIPE_ARGV" >> "$etc/master.cf"
fi
for part in TRANSPORT:transport MASTER:master.cf MAIN:main.cf; do
  var="MAIL_TESTBED_${part%%:*}"
  if [ -n "${!var:-}" ]; then cat "${!var}" >> "$etc/${part#*:}"; fi
done
# Postfix prints fatal start-up errors only to a tty.
if ! out=$(script -qec "postfix -c $etc start" /dev/null 2>&1); then
  echo "mail-testbed: postfix did not start: $out" >&2
  stop
  exit 1
fi

# Both listening?
for port in "$smtp" "$imap"; do
  for _ in $(seq 1 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.05
  done
done

echo "SMTP_PORT=$smtp"
echo "IMAP_PORT=$imap"
echo "LMTP_PORT=$lmtp"
echo "MAIL_DOMAIN=example.test"
echo "MAIL_PASSWORD=$password"
