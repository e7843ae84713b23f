//! What the mail state keeps (`state.rs` stores it): what a mailed command
//! asks for and the files that came with it, a command waiting for its
//! confirmation, a confirmed job on its session's queue, a reply on its way
//! out, and where IMAP reading stands.

use serde::{Deserialize, Serialize};

/// What a mailed command asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// Type this line and Enter (after saving the files that came with it).
    Prompt {
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<Attachment>,
    },
    /// Ctrl-C.
    Interrupt,
    /// Create the session named in the job.
    New,
    /// Restore the session's workspace to a snapshot.
    Rollback { snapshot: String },
}

impl Action {
    /// How the action reads in mail and the audit log.
    pub fn describe(&self) -> String {
        match self {
            Action::Prompt { text, files } if files.is_empty() => text.clone(),
            Action::Prompt { text, files } => {
                let names: Vec<String> = files
                    .iter()
                    .map(|f| format!("{} ({} bytes)", f.name, f.size()))
                    .collect();
                format!(
                    "{text}\n(attached, saved in the uploads directory first: {})",
                    names.join(", ")
                )
            }
            Action::Interrupt => "(interrupt: Ctrl-C)".into(),
            Action::New => "(create the session)".into(),
            Action::Rollback { snapshot } => {
                format!("(roll the workspace back to snapshot {snapshot})")
            }
        }
    }
}

/// A file mailed with a prompt, kept until it is saved (base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub data: String,
}

impl Attachment {
    pub fn new(name: &str, content_type: &str, bytes: &[u8]) -> Attachment {
        use base64::Engine as _;
        Attachment {
            name: name.to_owned(),
            content_type: content_type.to_owned(),
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .unwrap_or_default()
    }

    /// The decoded size.
    pub fn size(&self) -> usize {
        self.data.len() / 4 * 3 - self.data.bytes().rev().take_while(|b| *b == b'=').count()
    }
}

/// Where replies go, and how they thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// The authenticated sender.
    pub to: String,
    pub subject: String,
    pub in_reply_to: String,
    pub references: Vec<String>,
}

/// A command waiting for its confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Public id (the web link); not a secret.
    pub id: String,
    /// SHA-256 of the mailed token.
    pub token_hash: String,
    pub user: String,
    pub session: String,
    pub action: Action,
    pub flags: Vec<String>,
    pub thread: Thread,
    pub created_ms: u64,
    pub expires_ms: u64,
}

/// Where a confirmed job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Waiting for the agent to finish what it is doing.
    Queued,
    /// About to be typed; after a crash here, the transcript tells whether
    /// it was.
    Typing,
    /// Typed at `typed_ms`; waiting for the agent's answer.
    Typed,
}

/// A confirmed command on its session's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub user: String,
    pub session: String,
    pub action: Action,
    pub thread: Thread,
    pub stage: Stage,
    pub queued_ms: u64,
    pub typed_ms: Option<u64>,
}

/// A reply to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub reply_to: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub attempts: u32,
    pub next_ms: u64,
    pub created_ms: u64,
    pub last_error: Option<String>,
}

/// IMAP position: the mailbox's UIDVALIDITY and the last UID handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImapMark {
    pub uidvalidity: u32,
    pub last_uid: u32,
}
