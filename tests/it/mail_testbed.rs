//! The mail testbed (scripts/mail-testbed.sh): real Postfix and Dovecot on
//! loopback deliver to plus-addresses, serve IMAP with IDLE, and bounce.

use std::process::Command;

#[test]
fn testbed_delivers_serves_imap_and_bounces() {
    let bed = crate::common::Testbed::start();
    let check = r#"
import smtplib, imaplib, sys, time, email
smtp, imap, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
msg = "From: bob@example.test\r\nTo: agent+s3cret@example.test\r\nSubject: hi\r\nMessage-ID: <t1@x>\r\n\r\necho hello\r\n"
with smtplib.SMTP("127.0.0.1", smtp) as s:
    s.sendmail("bob@example.test", ["agent+s3cret@example.test"], msg)
    s.sendmail("agent@example.test", ["bounce@example.test"], "From: agent@example.test\r\nTo: bounce@example.test\r\nSubject: x\r\n\r\nx\r\n")
M = imaplib.IMAP4("127.0.0.1", imap)
M.login("agent@example.test", password)
assert "IDLE" in str(M.capability()), M.capability()
for _ in range(200):
    M.select("INBOX")
    typ, data = M.search(None, "ALL")
    if len(data[0].split()) >= 2:
        break
    time.sleep(0.05)
ids = data[0].split()
assert len(ids) == 2, ids
heads = [email.message_from_bytes(M.fetch(i, "(RFC822.HEADER)")[1][0][1]) for i in ids]
command = [m for m in heads if m["Subject"] == "hi"][0]
assert command["To"] == "agent+s3cret@example.test", command["To"]
dsn = [m for m in heads if m["Subject"] != "hi"][0]
assert dsn["Return-Path"] == "<>", dsn["Return-Path"]
assert dsn["Auto-Submitted"] == "auto-replied", dsn["Auto-Submitted"]
print("ok")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(check)
        .args([
            bed.smtp.to_string(),
            bed.imap.to_string(),
            bed.password.clone(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
