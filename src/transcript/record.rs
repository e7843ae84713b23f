//! One transcript record and its encoding: output (lz4-compressed
//! chunks), input with its source, or an event, with wall-clock and
//! monotonic times.

use super::*;

/// What a record holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Bytes the pane printed.
    Output(Vec<u8>),
    /// Text typed into the session, and who sent it.
    Input { source: String, text: String },
    /// A lifecycle event (`created`, `agent-exit`, `viewer-attach`,
    /// `resize`, `state`, ...) with its details.
    Event {
        kind: String,
        detail: serde_json::Value,
    },
}

/// One transcript record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: u64,
    /// Wall clock, ms since the Unix epoch.
    pub wall_ms: u64,
    /// CLOCK_MONOTONIC, ns (comparable within one boot).
    pub mono_ns: u64,
    pub body: Body,
}

pub(super) const KIND_OUTPUT: u8 = 1;

pub(super) const KIND_INPUT: u8 = 2;

pub(super) const KIND_EVENT: u8 = 3;

impl Record {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(32);
        let (kind, payload) = match &self.body {
            Body::Output(raw) => {
                let mut p = (raw.len() as u32).to_be_bytes().to_vec();
                p.extend(lz4_flex::block::compress(raw));
                (KIND_OUTPUT, p)
            }
            Body::Input { source, text } => (
                KIND_INPUT,
                serde_json::to_vec(&serde_json::json!({"source": source, "text": text}))
                    .expect("json"),
            ),
            Body::Event { kind, detail } => (
                KIND_EVENT,
                serde_json::to_vec(&serde_json::json!({"kind": kind, "detail": detail}))
                    .expect("json"),
            ),
        };
        v.push(kind);
        v.extend(self.wall_ms.to_be_bytes());
        v.extend(self.mono_ns.to_be_bytes());
        v.extend(payload);
        v
    }

    pub(super) fn decode(id: u64, v: &[u8]) -> Option<Record> {
        if v.len() < 17 {
            return None;
        }
        let wall_ms = u64::from_be_bytes(v[1..9].try_into().ok()?);
        let mono_ns = u64::from_be_bytes(v[9..17].try_into().ok()?);
        let payload = &v[17..];
        let body = match v[0] {
            KIND_OUTPUT => {
                let len = u32::from_be_bytes(payload.get(..4)?.try_into().ok()?) as usize;
                Body::Output(lz4_flex::block::decompress(&payload[4..], len).ok()?)
            }
            KIND_INPUT => {
                let j: serde_json::Value = serde_json::from_slice(payload).ok()?;
                Body::Input {
                    source: j["source"].as_str()?.to_owned(),
                    text: j["text"].as_str()?.to_owned(),
                }
            }
            KIND_EVENT => {
                let j: serde_json::Value = serde_json::from_slice(payload).ok()?;
                Body::Event {
                    kind: j["kind"].as_str()?.to_owned(),
                    detail: j["detail"].clone(),
                }
            }
            _ => return None,
        };
        Some(Record {
            id,
            wall_ms,
            mono_ns,
            body,
        })
    }
}

/// How far a session's spool file has been ingested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolMark {
    /// The spool file's inode: a different one means it was replaced.
    pub inode: u64,
    /// Bytes of the spool already in the transcript.
    pub offset: u64,
}

/// Retention limits per session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Stored (compressed) bytes kept per session.
    pub max_bytes: u64,
    pub max_age: Duration,
}

pub(super) fn record_key(id: u64) -> [u8; 9] {
    let mut k = [RECORD_PREFIX; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}
