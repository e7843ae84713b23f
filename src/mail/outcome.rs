//! What became of a mail: the `decision` of every audit entry, as one type.
//! The names are the audit log's and the metrics' labels.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Our own or automatic mail; not answered.
    Ignored,
    /// Unauthenticated, unknown sender or address, malformed, rate limited.
    Rejected,
    /// Authenticated, but the command or answer was not accepted.
    Refused,
    /// A Message-ID handled before.
    Duplicate,
    /// A confirmation was mailed.
    Pending,
    Confirmed,
    Cancelled,
    Expired,
    /// Queued without confirmation (the user's policy).
    Queued,
    /// A read-only verb, or an agent's question, answered.
    Answered,
    Executed,
    Failed,
    SendFailed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ignored => "ignored",
            Outcome::Rejected => "rejected",
            Outcome::Refused => "refused",
            Outcome::Duplicate => "duplicate",
            Outcome::Pending => "pending",
            Outcome::Confirmed => "confirmed",
            Outcome::Cancelled => "cancelled",
            Outcome::Expired => "expired",
            Outcome::Queued => "queued",
            Outcome::Answered => "answered",
            Outcome::Executed => "executed",
            Outcome::Failed => "failed",
            Outcome::SendFailed => "send-failed",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn serialized_as_the_audit_names() {
        for o in [Outcome::Rejected, Outcome::SendFailed, Outcome::Answered] {
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
    }
}
