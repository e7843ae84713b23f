"""Test-side mail client for the loopback testbed (stdlib only).

  mailclient.py send SMTP_PORT ENVELOPE_FROM RCPT   < raw message
  mailclient.py list IMAP_PORT USER PASSWORD [MAILBOX]
      prints a JSON array: [{"uid", "headers": [[name, value], ...], "body"}]
"""
import email
import email.policy
import imaplib
import json
import smtplib
import sys

cmd = sys.argv[1]
if cmd == "send":
    port, sender, rcpt = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    raw = sys.stdin.buffer.read()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail(sender, [rcpt], raw)
elif cmd == "list":
    port, user, password = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    mailbox = sys.argv[5] if len(sys.argv) > 5 else "INBOX"
    m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    m.login(user, password)
    out = []
    typ, _ = m.select(mailbox, readonly=True)
    if typ == "OK":
        typ, data = m.uid("SEARCH", None, "ALL")
        for uid in data[0].split():
            typ, msg = m.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
            parsed = email.message_from_bytes(msg[0][1], policy=email.policy.default)
            body = parsed.get_body(preferencelist=("plain",))
            out.append({
                "uid": int(uid),
                "flags": msg[0][0].decode(),
                "headers": [[k, str(v)] for k, v in parsed.items()],
                "body": body.get_content().replace("\r\n", "\n") if body is not None else "",
            })
    m.logout()
    print(json.dumps(out))
else:
    sys.exit("usage: mailclient.py send|list ...")
