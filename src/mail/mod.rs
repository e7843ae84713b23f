//! The email bridge: commands by mail, typed only after an authenticated,
//! explicit confirmation, with the agent's answer mailed back.
//!
//! - [`message`]: parsing inbound mail (caps, quoting, charsets);
//! - [`sender`]: sender authentication, secret addresses, tokens;
//! - [`outcome`]: what became of a mail (the audit log's decisions);
//! - [`items`]: what the state keeps (commands, pending confirmations,
//!   jobs, replies);
//! - [`state`]: the durable state (one atomic JSON file) and audit log;
//! - [`bridge`]: the decision for each message, and its effects;
//! - [`exec`]: one queue per session that types confirmed commands and
//!   collects the answer;
//! - [`outbox`]: replies sent by SMTP, with retry;
//! - [`imap`]: inbound by IMAP IDLE.

pub mod bridge;
pub mod exec;
pub mod imap;
pub mod items;
pub mod message;
pub mod outbox;
pub mod outcome;
pub mod sender;
pub mod state;

pub use bridge::Bridge;
pub use outcome::Outcome;
