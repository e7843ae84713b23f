//! What a notification says, in each receiver's format, and its
//! signature.

use hmac::{KeyInit, Mac};

use crate::agent::AnswerOption;
use crate::config::{WebhookConfig, WebhookContent};
use crate::names::SessionId;
use crate::recorder::{AgentState, PendingQuestion};

/// One notification, before it is formatted for a receiver.
#[derive(Clone, Debug)]
pub struct Note {
    pub id: SessionId,
    /// `waiting`, `done` or `exited`.
    pub event: &'static str,
    /// Unix seconds.
    pub time: u64,
    /// The question and its options, when the agent asks one.
    pub question: Option<(String, Vec<AnswerOption>)>,
    /// How the agent ended, for `exited`.
    pub exit: Option<String>,
    /// The screen's last lines.
    pub screen: String,
}

impl Note {
    pub fn new(
        id: &SessionId,
        event: &'static str,
        state: AgentState,
        question: Option<&PendingQuestion>,
        screen: impl FnOnce() -> String,
    ) -> Note {
        let exit = match state {
            AgentState::Exited {
                status: Some(s), ..
            } => Some(format!("status {s}")),
            AgentState::Exited {
                signal: Some(s), ..
            } => Some(format!("signal {s}")),
            _ => None,
        };
        Note {
            id: id.clone(),
            event,
            time: crate::transcript::now().0 / 1000,
            question: question.map(|q| (q.question.text.clone(), q.question.options.clone())),
            exit,
            screen: screen(),
        }
    }

    /// Who needs what, and (full content) the question and its options.
    fn headline(&self, content: WebhookContent) -> String {
        let id = &self.id;
        let full = content == WebhookContent::Full;
        match (self.event, &self.question, &self.exit) {
            ("waiting", Some((text, options)), _) if full => {
                let mut line = format!("{id} needs you: {text}");
                for o in options {
                    line.push_str(&format!("  {}. {}", o.key, o.label));
                }
                line
            }
            ("waiting", _, _) => format!("{id} needs you"),
            ("done", _, _) => format!("{id} is done"),
            (_, _, Some(how)) if full => format!("{id}: the agent exited ({how})"),
            _ => format!("{id}: the agent exited"),
        }
    }

    /// One line for chat receivers, with the page's link when known.
    pub fn line(&self, content: WebhookContent, page_url: Option<&str>) -> String {
        let head = self.headline(content);
        match page_url {
            Some(url) => format!("{head} {url}/#/s/{}", self.id),
            None => head,
        }
    }

    /// Our JSON: with `minimal` content, no question, screen or exit.
    pub fn json(&self, content: WebhookContent, page_url: Option<&str>) -> serde_json::Value {
        let mut v = serde_json::json!({
            "event": self.event,
            "session": self.id.to_string(),
            "user": self.id.user.as_str(),
            "time": self.time,
            "text": self.headline(content),
        });
        if let Some(url) = page_url {
            v["url"] = format!("{url}/#/s/{}", self.id).into();
        }
        if content == WebhookContent::Full {
            if let Some((text, options)) = &self.question {
                v["question"] = serde_json::json!({ "text": text, "options": options });
            }
            if let Some(exit) = &self.exit {
                v["exit"] = exit.clone().into();
            }
            v["screen"] = self.screen.clone().into();
        }
        v
    }
}

/// A formatted, possibly signed, request.
pub struct Request {
    /// Content-Type first.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The request `hook` gets for `note`, signed with `secret` if any.
pub fn request(hook: &WebhookConfig, note: &Note, secret: Option<&str>) -> Request {
    let page = hook.page_url.as_deref();
    let (content_type, body) = super::body_of(hook.format, hook.content, note, page);
    let mut headers = vec![
        ("Content-Type", content_type.to_owned()),
        ("X-Tmuxd-Event", note.event.to_owned()),
    ];
    if hook.format == crate::config::WebhookFormat::Ntfy {
        headers.push(("Title", "tmuxd".to_owned()));
    }
    if let Some(secret) = secret {
        headers.push(("X-Tmuxd-Timestamp", note.time.to_string()));
        headers.push(("X-Tmuxd-Signature", sign(secret, note.time, &body)));
    }
    Request { headers, body }
}

/// `sha256=HEX` of HMAC-SHA256(secret, "TIMESTAMP.BODY").
pub fn sign(secret: &str, time: u64, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(time.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(question: bool) -> Note {
        Note {
            id: "alice/main".parse().unwrap(),
            event: "waiting",
            time: 1_700_000_000,
            question: question.then(|| {
                (
                    "Do you want to proceed?".to_owned(),
                    vec![
                        AnswerOption {
                            key: "1".into(),
                            label: "Yes".into(),
                        },
                        AnswerOption {
                            key: "2".into(),
                            label: "No".into(),
                        },
                    ],
                )
            }),
            exit: None,
            screen: "$ rm -rf build".into(),
        }
    }

    #[test]
    fn minimal_content_says_who_and_where_only() {
        let n = note(true);
        let page = Some("https://t.example.com");
        assert_eq!(
            n.line(WebhookContent::Minimal, page),
            "alice/main needs you https://t.example.com/#/s/alice/main"
        );
        let v = n.json(WebhookContent::Minimal, page);
        assert!(
            v.get("question").is_none() && v.get("screen").is_none(),
            "{v}"
        );
        let full = n.json(WebhookContent::Full, None);
        assert_eq!(full["question"]["options"][1]["label"], "No");
        assert_eq!(
            n.line(WebhookContent::Full, None),
            "alice/main needs you: Do you want to proceed?  1. Yes  2. No"
        );
        assert_eq!(
            note(false).line(WebhookContent::Full, None),
            "alice/main needs you"
        );
    }

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_and_body() {
        // Computed independently:
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"k",b"1.{}",hashlib.sha256).hexdigest())'
        assert_eq!(
            sign("k", 1, b"{}"),
            "sha256=3dd49b2593d0f9a349e9e71c4bde3e2b862c2be4003fe9b4ba81332029310158"
        );
    }
}
