//! Inbound mail, parsed into what the bridge decides on.
//!
//! mail-parser does the RFC 5322/MIME work (charsets, encoded words, HTML
//! converted to text). This module adds the caps (size, MIME depth, part
//! count), collects the headers the bridge trusts or distrusts (From,
//! recipients, `Authentication-Results` in order, the auto-reply and list
//! headers), and reduces the body to what the sender wrote: quoted replies
//! and signatures are cut off.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// The header our own mail carries; mail that has it is never answered.
pub const LOOP_HEADER: &str = "X-Tmuxd-Loop";

/// Why a message could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message is {size} bytes; the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error("not an RFC 5322 message (no headers)")]
    NotAMessage,
    #[error("MIME nesting is {depth} levels deep; the limit is {max}")]
    TooDeep { depth: usize, max: usize },
    #[error("message has {parts} MIME parts; the limit is {max}")]
    TooManyParts { parts: usize, max: usize },
}

/// Caps on what is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_parts: usize,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            max_bytes: 256 * 1024,
            max_depth: 8,
            max_parts: 64,
        }
    }
}

/// What the bridge needs from one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbound {
    /// The Message-ID without brackets; a hash of the message when absent.
    pub message_id: String,
    /// Every From address, lowercased.
    pub from: Vec<String>,
    /// To, Cc, Delivered-To and X-Original-To addresses, lowercased.
    pub recipients: Vec<String>,
    pub subject: String,
    /// The first text body (HTML converted when there is no text part).
    pub text: String,
    /// Raw `Authentication-Results` values, topmost first.
    pub auth_results: Vec<String>,
    /// Why this is automatic mail that must never be answered, if it is.
    pub automatic: Option<String>,
    /// The References to put on a reply (theirs plus their Message-ID).
    pub references: Vec<String>,
    /// A text part could not be decoded (unknown charset, invalid bytes).
    pub undecodable: bool,
    /// The attachments: their names (as sent), MIME types and bytes.
    pub attachments: Vec<MailFile>,
}

/// One attachment of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailFile {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Short hex SHA-256 of `bytes`.
pub fn digest_hex(bytes: &[u8]) -> String {
    crate::auth::hex(&Sha256::digest(bytes)[..16])
}

/// The Message-ID of a message that could not be parsed whole (too large,
/// too deep), read from its headers alone; else a hash of it.
pub fn message_id_of(raw: &[u8]) -> String {
    let head = &raw[..raw.len().min(64 * 1024)];
    MessageParser::default()
        .parse_headers(head)
        .and_then(|m| m.message_id().map(|s| s.trim().to_owned()))
        .filter(|s| !s.is_empty())
        .map(|s| bounded_id(&s))
        .unwrap_or_else(|| format!("sha256:{}", digest_hex(raw)))
}

/// Longest Message-ID kept as it is.
const MAX_ID: usize = 200;

/// A Message-ID as stored and audited: as sent when short and printable
/// ASCII, else `sha256:` of it (a sender cannot grow the state with huge
/// or strange ids).
pub fn bounded_id(id: &str) -> String {
    if id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_graphic()) {
        id.to_owned()
    } else {
        format!("sha256:{}", digest_hex(id.as_bytes()))
    }
}

/// Parses `raw` within `caps`.
pub fn parse(raw: &[u8], caps: Caps) -> Result<Inbound, ParseError> {
    if raw.len() > caps.max_bytes {
        return Err(ParseError::TooLarge {
            size: raw.len(),
            max: caps.max_bytes,
        });
    }
    let msg = MessageParser::default()
        .parse(raw)
        .filter(|m| !m.headers().is_empty())
        .ok_or(ParseError::NotAMessage)?;
    let (depth, parts) = shape(&msg);
    if depth > caps.max_depth {
        return Err(ParseError::TooDeep {
            depth,
            max: caps.max_depth,
        });
    }
    if parts > caps.max_parts {
        return Err(ParseError::TooManyParts {
            parts,
            max: caps.max_parts,
        });
    }

    let message_id = match msg.message_id() {
        Some(id) if !id.trim().is_empty() => bounded_id(id.trim()),
        _ => format!("sha256:{}", digest_hex(raw)),
    };
    let addrs = |a: Option<&mail_parser::Address>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .filter_map(|x| x.address())
                .map(|x| x.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
    };
    let from = addrs(msg.from());
    let mut recipients = addrs(msg.to());
    recipients.extend(addrs(msg.cc()));
    let mut auth_results = Vec::new();
    let mut return_path = None;
    let mut loop_header = false;
    for (name, value) in msg.headers_raw() {
        let value = unfold(value);
        match name.to_ascii_lowercase().as_str() {
            "authentication-results" => auth_results.push(value),
            "delivered-to" | "x-original-to" => {
                recipients.push(bare_address(&value).to_ascii_lowercase())
            }
            "return-path" if return_path.is_none() => return_path = Some(value),
            n if n == LOOP_HEADER.to_ascii_lowercase() => loop_header = true,
            _ => {}
        }
    }
    recipients.sort();
    recipients.dedup();

    let header_text = |name: &str| -> Option<String> {
        msg.header_raw(name).map(|v| unfold(v).to_ascii_lowercase())
    };
    let automatic = if loop_header {
        Some(format!("carries our {LOOP_HEADER} header"))
    } else if let Some(v) =
        header_text("Auto-Submitted").filter(|v| v.split(';').next().unwrap_or("").trim() != "no")
    {
        Some(format!("Auto-Submitted: {v}"))
    } else if let Some(v) =
        header_text("Precedence").filter(|v| matches!(v.as_str(), "bulk" | "list" | "junk"))
    {
        Some(format!("Precedence: {v}"))
    } else if msg.header_raw("List-Id").is_some() {
        Some("mailing-list mail (List-Id)".to_owned())
    } else if return_path
        .as_deref()
        .is_some_and(|r| bare_address(r).is_empty())
    {
        Some("null return path (a bounce)".to_owned())
    } else if from.iter().any(|f| {
        let local = f.split('@').next().unwrap_or("");
        local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
    }) {
        Some("from a mailer daemon".to_owned())
    } else if msg.content_type().is_some_and(|ct| {
        ct.subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    }) {
        Some("a delivery or disposition report".to_owned())
    } else {
        None
    };

    let mut references: Vec<String> = msg
        .references()
        .as_text_list()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .or_else(|| msg.references().as_text().map(|s| vec![s.to_owned()]))
        .unwrap_or_default();
    if msg.message_id().is_some() {
        references.push(message_id.clone());
    }
    let text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let undecodable = text.contains('\u{FFFD}') || msg.text_bodies().any(|p| p.is_encoding_problem);
    let attachments = msg
        .attachments()
        .map(|part| MailFile {
            name: part.attachment_name().unwrap_or("attachment").to_owned(),
            content_type: part
                .content_type()
                .map(|ct| {
                    let sub = ct.subtype().unwrap_or("octet-stream");
                    format!("{}/{sub}", ct.ctype()).to_ascii_lowercase()
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            bytes: part.contents().to_vec(),
        })
        .collect();
    Ok(Inbound {
        attachments,
        message_id,
        from,
        recipients,
        subject: msg.subject().unwrap_or("").trim().to_owned(),
        text,
        auth_results,
        automatic,
        references,
        undecodable,
    })
}

/// MIME depth and number of parts, nested messages included.
fn shape(msg: &mail_parser::Message) -> (usize, usize) {
    fn walk(msg: &mail_parser::Message, part: u32, depth: usize, out: &mut (usize, usize)) {
        out.0 = out.0.max(depth);
        out.1 += 1;
        if out.1 > 10_000 || depth > 100 {
            return;
        }
        match msg.part(part).map(|p| &p.body) {
            Some(PartType::Multipart(children)) => {
                for &c in children {
                    walk(msg, c, depth + 1, out);
                }
            }
            Some(PartType::Message(inner)) => walk(inner, 0, depth + 1, out),
            _ => {}
        }
    }
    let mut out = (0, 0);
    walk(msg, 0, 1, &mut out);
    out
}

/// Header value with folding removed.
fn unfold(v: &str) -> String {
    v.split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `Name <a@b>` or `<a@b>` or `a@b` -> `a@b` (empty for `<>`).
fn bare_address(v: &str) -> &str {
    let v = v.trim();
    match (v.rfind('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].trim(),
        _ => v,
    }
}

/// The lines the sender wrote: stops at a signature (`-- `), a reply
/// attribution ("On ... wrote:"), a forwarded or original-message marker;
/// skips quoted (`>`) lines.
pub fn own_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim_end_matches('\r');
        let trimmed = t.trim();
        if t == "-- " || trimmed == "--" || trimmed == "__" {
            break;
        }
        if trimmed.starts_with('>') {
            continue;
        }
        let lower = trimmed.to_lowercase();
        if (lower.starts_with("on ") && lower.ends_with("wrote:"))
            || lower.ends_with(" a écrit :")
            || lower.ends_with(" a écrit:")
            || (lower.starts_with("am ") && lower.ends_with("schrieb:"))
            || lower.starts_with("-----original message-----")
            || lower.starts_with("---------- forwarded message")
            || lower.starts_with("________________________________")
            || lower.starts_with("sent from my ")
        {
            break;
        }
        out.push(t);
    }
    out
}

/// The first non-empty line the sender wrote, trimmed.
pub fn first_line(text: &str) -> Option<&str> {
    own_lines(text)
        .into_iter()
        .map(str::trim)
        .find(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &str, body: &str) -> Vec<u8> {
        format!("{headers}\r\n\r\n{body}")
            .replace("\r\n", "\n")
            .replace('\n', "\r\n")
            .into_bytes()
    }

    const BASE: &str = "From: Alice <Alice@Example.org>\nTo: agent+abc@example.test\nSubject: [docs] hi\nMessage-ID: <m1@example.org>";

    #[test]
    fn reads_the_basics() {
        let m = parse(&msg(BASE, "run the tests\n\n-- \nAlice"), Caps::default()).unwrap();
        assert_eq!(m.message_id, "m1@example.org");
        assert_eq!(m.from, vec!["alice@example.org"]);
        assert_eq!(m.recipients, vec!["agent+abc@example.test"]);
        assert_eq!(m.subject, "[docs] hi");
        assert_eq!(first_line(&m.text), Some("run the tests"));
        assert_eq!(m.references, vec!["m1@example.org"]);
        assert!(m.automatic.is_none());
        assert!(!m.undecodable);
    }

    #[test]
    fn quotes_and_signatures_are_cut() {
        let body = "\n  \nyes\n\nOn Tue, Bob wrote:\n> something\n";
        assert_eq!(first_line(body), Some("yes"));
        assert_eq!(own_lines("> quoted\nreal\n-- \nsig"), vec!["real"]);
        assert_eq!(first_line("> only quoted\n"), None);
        assert_eq!(first_line("-----Original Message-----\nrm -rf /"), None);
    }

    #[test]
    fn html_only_mail_becomes_text() {
        let h = format!("{BASE}\nContent-Type: text/html; charset=utf-8");
        let m = parse(
            &msg(&h, "<html><body><p>list the files</p></body></html>"),
            Caps::default(),
        )
        .unwrap();
        assert_eq!(first_line(&m.text), Some("list the files"));
    }

    #[test]
    fn charsets_are_decoded_and_bad_ones_flagged() {
        let h = format!("{BASE}\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable");
        let m = parse(&msg(&h, "caf=E9"), Caps::default()).unwrap();
        assert_eq!(first_line(&m.text), Some("café"));
        assert!(!m.undecodable);
        let h = format!("{BASE}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable");
        let m = parse(&msg(&h, "caf=E9=FF"), Caps::default()).unwrap();
        assert!(m.undecodable);
        let h = format!("{BASE}\nContent-Type: text/plain; charset=x-no-such-charset\nContent-Transfer-Encoding: quoted-printable");
        let m = parse(&msg(&h, "caf=E9"), Caps::default()).unwrap();
        assert!(m.undecodable);
    }

    #[test]
    fn automatic_mail_is_recognized() {
        for (extra, why) in [
            ("Auto-Submitted: auto-replied", "Auto-Submitted"),
            ("Precedence: bulk", "Precedence"),
            ("List-Id: <x.lists.example.org>", "List-Id"),
            ("Return-Path: <>", "null return path"),
            ("X-Tmuxd-Loop: host", "X-Tmuxd-Loop"),
        ] {
            let m = parse(&msg(&format!("{extra}\n{BASE}"), "hi"), Caps::default()).unwrap();
            assert!(
                m.automatic.as_deref().unwrap_or("").contains(why),
                "{extra}: {:?}",
                m.automatic
            );
        }
        let m = parse(
            &msg(&format!("Auto-Submitted: no\n{BASE}"), "hi"),
            Caps::default(),
        )
        .unwrap();
        assert_eq!(m.automatic, None);
    }

    #[test]
    fn caps_are_enforced() {
        let big = msg(BASE, &"x".repeat(300 * 1024));
        assert!(matches!(
            parse(&big, Caps::default()),
            Err(ParseError::TooLarge { .. })
        ));
        let mut body = String::new();
        let depth = 12;
        for i in 0..depth {
            body.push_str(&format!(
                "--b{i}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n",
                i + 1
            ));
        }
        body.push_str(&format!(
            "--b{depth}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n"
        ));
        for i in (0..=depth).rev() {
            body.push_str(&format!("--b{i}--\r\n"));
        }
        let h = format!("{BASE}\nContent-Type: multipart/mixed; boundary=\"b0\"");
        let err = parse(&msg(&h, &body), Caps::default()).unwrap_err();
        assert!(matches!(err, ParseError::TooDeep { .. }), "{err}");
        assert_eq!(parse(b"", Caps::default()), Err(ParseError::NotAMessage));
    }

    #[test]
    fn authentication_results_keep_their_order() {
        let h = format!("Authentication-Results: mx.example.test;\n dmarc=pass header.from=example.org\n{BASE}\nAuthentication-Results: evil; dmarc=pass");
        let m = parse(&msg(&h, "x"), Caps::default()).unwrap();
        assert_eq!(m.auth_results.len(), 2);
        assert!(m.auth_results[0].starts_with("mx.example.test; dmarc=pass"));
        assert!(m.auth_results[1].starts_with("evil"));
    }
}
