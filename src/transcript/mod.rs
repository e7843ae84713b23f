//! Transcripts in sled (the only sled user): records, retention, export.
//!
//! One tree per session (`t/USER/SESSION`). Records are keyed by
//! `0x01 ++ id` (big-endian ids from `sled::Db::generate_id`, so increasing)
//! and carry a kind, a wall-clock time (ms) and a monotonic time (ns):
//! terminal output (lz4-compressed chunks), input with its source, and
//! lifecycle events. The same tree holds, under `0x00`, how far the
//! session's spool file has been ingested, so a chunk and its new offset are
//! committed in one atomic batch: a crash at any instant loses and duplicates
//! nothing. sled's background flusher is off (it wakes the process many
//! times a second); callers flush where durability is promised.
//!
//! Export formats: `raw` (the output bytes), `text` (what the screen
//! showed, rendered by a terminal emulator, with inputs and events) and
//! `asciicast` (v2).
//!
//! Parts: `record` (the codec), `store` (sled, appends, retention),
//! `export`, `render` (the screen's text), `since` (`--since` values).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::names::SessionId;

mod export;
mod record;
mod render;
mod since;
mod store;
#[cfg(test)]
mod tests;

pub use export::{export, export_stream, output_text, ExportError, ExportOptions, Format};
use record::record_key;
pub use record::{Body, Record, Retention, SpoolMark};
pub use render::{to_text, TextRenderer};
pub use since::parse_since;
pub use store::{now, SessionLog, Store};

const META_KEY: &[u8] = &[0x00];

const RECORD_PREFIX: u8 = 0x01;

/// Output is stored in chunks of at most this many raw bytes.
pub const MAX_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("transcript database {path} cannot be opened ({reason}); it may be damaged: tmuxd will not start on it or discard it. Move it aside (e.g. `mv {path} {path}.damaged`) to start with an empty one, or restore it from a backup")]
    Damaged { path: PathBuf, reason: String },
    #[error("transcript database {0} is in use by another process (another tmuxd, or `tmuxd transcript` reading it while the daemon is down); stop it and try again")]
    InUse(PathBuf),
    #[error("transcript database: {0}")]
    Sled(#[from] sled::Error),
    #[error("transcript record {0} is damaged")]
    BadRecord(String),
}
