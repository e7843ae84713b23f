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
//! Export formats: `raw` (the output bytes), `text` (rendered through a VT
//! parser, escape sequences dropped) and `asciicast` (v2).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::names::SessionId;

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

const KIND_OUTPUT: u8 = 1;
const KIND_INPUT: u8 = 2;
const KIND_EVENT: u8 = 3;

impl Record {
    fn encode(&self) -> Vec<u8> {
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

    fn decode(id: u64, v: &[u8]) -> Option<Record> {
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

/// The transcript database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

/// Current wall-clock ms and monotonic ns.
pub fn now() -> (u64, u64) {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0);
    (wall, mono)
}

impl Store {
    /// Opens (or creates) the database at `path`. A database sled cannot
    /// open is reported, never discarded.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_waiting(path, Duration::ZERO)
    }

    /// Like [`Store::open`], waiting up to `patience` while another process
    /// (e.g. a daemon that was just killed) still holds the database.
    pub fn open_waiting(path: &Path, patience: Duration) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Store::try_open(path) {
                Err(StoreError::InUse(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn try_open(path: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            // No background flusher: it wakes the process ~12 times a
            // second even when idle. We flush explicitly.
            .flush_every_ms(None)
            .cache_capacity(8 * 1024 * 1024)
            .open()
            .map_err(|e| match e {
                // sled reports a held lock as an Io error with this text.
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    StoreError::InUse(path.to_owned())
                }
                e => StoreError::Damaged {
                    path: path.to_owned(),
                    reason: e.to_string(),
                },
            })?;
        Ok(Store { db })
    }

    /// The log of one session.
    pub fn session(&self, id: &SessionId) -> Result<SessionLog, StoreError> {
        Ok(SessionLog {
            tree: self.db.open_tree(format!("t/{id}"))?,
            db: self.db.clone(),
        })
    }

    /// Whether a session has any transcript.
    pub fn has_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(self
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == format!("t/{id}").as_bytes()))
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}

/// One session's transcript.
#[derive(Clone)]
pub struct SessionLog {
    tree: sled::Tree,
    db: sled::Db,
}

fn record_key(id: u64) -> [u8; 9] {
    let mut k = [RECORD_PREFIX; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

impl SessionLog {
    fn record(&self, body: Body) -> Result<Record, StoreError> {
        let (wall_ms, mono_ns) = now();
        Ok(Record {
            id: self.db.generate_id()?,
            wall_ms,
            mono_ns,
            body,
        })
    }

    /// Appends an input or event record (not durable until a flush).
    pub fn append(&self, body: Body) -> Result<(), StoreError> {
        let r = self.record(body)?;
        self.tree.insert(record_key(r.id), r.encode())?;
        Ok(())
    }

    pub fn event(&self, kind: &str, detail: serde_json::Value) -> Result<(), StoreError> {
        self.append(Body::Event {
            kind: kind.to_owned(),
            detail,
        })
    }

    pub fn input(&self, source: &str, text: &str) -> Result<(), StoreError> {
        self.append(Body::Input {
            source: source.to_owned(),
            text: text.to_owned(),
        })
    }

    /// Where spool ingestion stands.
    pub fn spool_mark(&self) -> Result<SpoolMark, StoreError> {
        match self.tree.get(META_KEY)? {
            Some(v) => {
                serde_json::from_slice(&v).map_err(|_| StoreError::BadRecord("spool mark".into()))
            }
            None => Ok(SpoolMark::default()),
        }
    }

    /// Appends `output` (split into chunks) and sets the spool mark, in one
    /// atomic batch. Returns the stored size of what was added.
    pub fn append_output(&self, output: &[u8], mark: SpoolMark) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        let mut stored = 0u64;
        for chunk in output.chunks(MAX_CHUNK) {
            let r = self.record(Body::Output(chunk.to_vec()))?;
            let v = r.encode();
            stored += v.len() as u64;
            batch.insert(&record_key(r.id)[..], v);
        }
        batch.insert(META_KEY, serde_json::to_vec(&mark).expect("json"));
        self.tree.apply_batch(batch)?;
        Ok(stored)
    }

    /// Records in order, from `since_ms` (wall clock) on.
    pub fn records(
        &self,
        since_ms: Option<u64>,
    ) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        self.tree
            .scan_prefix([RECORD_PREFIX])
            .filter_map(move |kv| {
                let (k, v) = match kv {
                    Ok(kv) => kv,
                    Err(e) => return Some(Err(e.into())),
                };
                let id = u64::from_be_bytes(k[1..9].try_into().ok()?);
                match Record::decode(id, &v) {
                    Some(r) if since_ms.is_some_and(|s| r.wall_ms < s) => None,
                    Some(r) => Some(Ok(r)),
                    None => Some(Err(StoreError::BadRecord(format!("{id}")))),
                }
            })
    }

    /// Stored bytes of all records.
    pub fn stored_bytes(&self) -> u64 {
        self.tree
            .scan_prefix([RECORD_PREFIX])
            .filter_map(Result::ok)
            .map(|(_, v)| v.len() as u64)
            .sum()
    }

    /// Drops whole records, oldest first, while the log is over
    /// `max_bytes` or records are older than `max_age`. Returns how many.
    pub fn apply_retention(&self, retention: Retention) -> Result<usize, StoreError> {
        let mut total = self.stored_bytes();
        let cutoff = now().0.saturating_sub(retention.max_age.as_millis() as u64);
        let mut dropped = 0;
        for kv in self.tree.scan_prefix([RECORD_PREFIX]) {
            let (k, v) = kv?;
            let wall_ms = v
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if total <= retention.max_bytes && wall_ms > cutoff {
                break;
            }
            self.tree.remove(&k)?;
            total = total.saturating_sub(v.len() as u64);
            dropped += 1;
        }
        Ok(dropped)
    }
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The output bytes exactly as the pane printed them.
    Raw,
    /// The output as plain text (escape sequences dropped) with inputs and
    /// events as marked lines.
    Text,
    /// asciicast v2, playable with asciinema.
    Asciicast,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raw" => Ok(Format::Raw),
            "text" => Ok(Format::Text),
            "asciicast" => Ok(Format::Asciicast),
            _ => Err(format!(
                "unknown format {s:?}: expected raw, text or asciicast"
            )),
        }
    }
}

/// What to export.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    pub since_ms: Option<u64>,
    /// Text lines matching this pattern only (text format).
    pub grep: Option<regex::Regex>,
}

/// Writes `log` in `format` to `out`.
pub fn export(
    log: &SessionLog,
    format: Format,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> Result<(), ExportError> {
    match format {
        Format::Raw => {
            for r in log.records(options.since_ms) {
                if let Body::Output(bytes) = r?.body {
                    out.write_all(&bytes)?;
                }
            }
        }
        Format::Text => {
            let mut text = TextRenderer::default();
            let mut lines = LineFilter::new(options.grep.clone(), out);
            // Marker lines (inputs, events) wait for the end of the line
            // being printed, so output lines read as the terminal showed
            // them.
            let mut pending: Vec<String> = Vec::new();
            for r in log.records(options.since_ms) {
                let r = r?;
                let marker = match r.body {
                    Body::Output(bytes) => {
                        let done = unforgeable(text.feed(&bytes));
                        match done.find('\n') {
                            Some(i) if !pending.is_empty() => {
                                lines.write(&done[..=i])?;
                                for m in pending.drain(..) {
                                    lines.write(&m)?;
                                }
                                lines.write(&done[i + 1..])?;
                            }
                            _ => lines.write(&done)?,
                        }
                        continue;
                    }
                    Body::Input {
                        source,
                        text: typed,
                    } => format!(
                        "[tmuxd {} input from {source}] {}\n",
                        stamp(r.wall_ms),
                        typed.trim_end_matches('\n').replace('\n', "\\n")
                    ),
                    Body::Event { kind, detail } => {
                        format!("[tmuxd {} {kind}] {detail}\n", stamp(r.wall_ms))
                    }
                };
                if text.current_line().is_empty() {
                    lines.write(&marker)?;
                } else {
                    pending.push(marker);
                }
            }
            lines.write(&unforgeable(text.flush()))?;
            for m in pending {
                lines.write(&m)?;
            }
            lines.finish()?;
        }
        Format::Asciicast => {
            let mut started: Option<u64> = None;
            let mut size = (80u32, 24u32);
            let mut events = Vec::new();
            // The header needs the first size; read it from the first
            // resize at or before the first output, if any.
            let mut utf8 = Utf8Carry::default();
            for r in log.records(options.since_ms) {
                let r = r?;
                let t0 = *started.get_or_insert(r.wall_ms);
                let t = (r.wall_ms.saturating_sub(t0)) as f64 / 1000.0;
                match r.body {
                    Body::Output(bytes) => {
                        let s = utf8.push(&bytes);
                        if !s.is_empty() {
                            events.push(serde_json::json!([t, "o", s]));
                        }
                    }
                    Body::Event { kind, detail } if kind == "resize" => {
                        let (c, rw) = (detail["cols"].as_u64(), detail["rows"].as_u64());
                        if let (Some(c), Some(rw)) = (c, rw) {
                            if events.is_empty() {
                                size = (c as u32, rw as u32);
                            } else {
                                events.push(serde_json::json!([t, "r", format!("{c}x{rw}")]));
                            }
                        }
                    }
                    Body::Event { kind, .. } => events.push(serde_json::json!([t, "m", kind])),
                    Body::Input { .. } => {}
                }
            }
            let header = serde_json::json!({
                "version": 2,
                "width": size.0,
                "height": size.1,
                "timestamp": started.unwrap_or(0) / 1000,
                "env": {"TERM": "xterm-256color"},
            });
            writeln!(out, "{header}")?;
            for e in events {
                writeln!(out, "{e}")?;
            }
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Exports on a blocking thread; chunks arrive through a bounded channel,
/// so a slow reader holds back the export instead of growing a buffer.
/// Dropping the receiver stops the export.
pub fn export_stream(
    log: SessionLog,
    format: Format,
    options: ExportOptions,
) -> tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(64 * 1024),
        };
        let result = export(&log, format, &options, &mut w).and_then(|_| Ok(w.flush()?));
        if let Err(e) = result {
            // A closed receiver is not worth reporting.
            if !matches!(&e, ExportError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe) {
                tracing::error!(error = %e, "transcript export failed");
                let _ = tx.blocking_send(Err("transcript export failed".into()));
            }
        }
    });
    rx
}

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, String>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf);
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

fn stamp(wall_ms: u64) -> String {
    crate::clock::iso8601(wall_ms / 1000)
}

/// Keeps UTF-8 sequences split across chunks together.
#[derive(Default)]
struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid_up_to = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let rest = self.pending.split_off(valid_up_to);
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        s
    }
}

/// Renders terminal output as plain text through a VT parser: printable
/// characters and line breaks are kept, escape sequences dropped, backspace
/// and carriage returns applied to the current line.
#[derive(Default)]
pub struct TextRenderer {
    parser: vte::Parser,
    sink: TextSink,
}

#[derive(Default)]
struct TextSink {
    line: Vec<char>,
    col: usize,
    done: String,
}

/// What `log` holds from `since_ms` on, as text without tmuxd's own
/// `[tmuxd ...]` lines, trimmed (what a mailed command's result shows).
pub fn output_text(log: &SessionLog, since_ms: Option<u64>) -> String {
    let mut out = Vec::new();
    let options = ExportOptions {
        since_ms,
        grep: None,
    };
    if let Err(e) = export(log, Format::Text, &options, &mut out) {
        tracing::warn!(error = %e, "cannot read the transcript as text");
    }
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("[tmuxd "))
        .map(str::trim_end)
        .collect();
    lines.join("\n").trim().to_owned()
}

/// Output lines (complete lines, as [`TextRenderer`] gives them) that look
/// like tmuxd's own `[tmuxd ...]` lines get a leading space: in the text
/// export only tmuxd's lines start with `[tmuxd` at the start of a line, so
/// what a program prints cannot pass for an input or an event.
fn unforgeable(lines: String) -> String {
    if !lines.contains("[tmuxd") {
        return lines;
    }
    let mut out = String::with_capacity(lines.len() + 8);
    for line in lines.split_inclusive('\n') {
        if line.starts_with("[tmuxd") {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

impl TextRenderer {
    /// Feeds bytes; returns the lines completed so far.
    pub fn feed(&mut self, bytes: &[u8]) -> String {
        self.parser.advance(&mut self.sink, bytes);
        std::mem::take(&mut self.sink.done)
    }

    /// The line being written (not yet ended), e.g. a prompt.
    pub fn current_line(&self) -> String {
        self.sink.line.iter().collect()
    }

    /// Ends the current line (if any) and returns what is pending.
    pub fn flush(&mut self) -> String {
        if !self.sink.line.is_empty() {
            self.sink.newline();
        }
        std::mem::take(&mut self.sink.done)
    }
}

/// Renders a whole byte string as text.
pub fn to_text(bytes: &[u8]) -> String {
    let mut r = TextRenderer::default();
    let mut s = r.feed(bytes);
    s.push_str(&r.flush());
    s
}

impl TextSink {
    fn newline(&mut self) {
        let line: String = self.line.iter().collect();
        self.done.push_str(line.trim_end());
        self.done.push('\n');
        self.line.clear();
        self.col = 0;
    }
}

impl vte::Perform for TextSink {
    fn print(&mut self, c: char) {
        if self.col < self.line.len() {
            self.line[self.col] = c;
        } else {
            self.line.push(c);
        }
        self.col += 1;
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' => self.newline(),
            b'\r' => self.col = 0,
            b'\t' => {
                let next = (self.col / 8 + 1) * 8;
                while self.line.len() < next {
                    self.line.push(' ');
                }
                self.col = next;
            }
            0x08 => self.col = self.col.saturating_sub(1),
            _ => {}
        }
    }
}

/// Writes text, keeping only lines that match a pattern when one is given.
struct LineFilter<'a> {
    grep: Option<regex::Regex>,
    out: &'a mut dyn Write,
    partial: String,
}

impl<'a> LineFilter<'a> {
    fn new(grep: Option<regex::Regex>, out: &'a mut dyn Write) -> Self {
        LineFilter {
            grep,
            out,
            partial: String::new(),
        }
    }

    fn write(&mut self, text: &str) -> std::io::Result<()> {
        let Some(re) = &self.grep else {
            return self.out.write_all(text.as_bytes());
        };
        self.partial.push_str(text);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            if re.is_match(line.trim_end_matches('\n')) {
                self.out.write_all(line.as_bytes())?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(re) = &self.grep {
            if !self.partial.is_empty() && re.is_match(&self.partial) {
                self.out.write_all(self.partial.as_bytes())?;
            }
        }
        self.out.flush()
    }
}

/// Parses `--since`: `30s`, `10m`, `2h`, `7d` ago; Unix seconds; or an
/// RFC 3339 UTC time (`2026-11-21T06:00:00Z`). Returns wall-clock ms.
pub fn parse_since(s: &str, now_ms: u64) -> Result<u64, String> {
    let bad = || {
        format!("invalid time {s:?}: use 30s, 10m, 2h, 7d, Unix seconds, or 2026-11-21T06:00:00Z")
    };
    let s = s.trim();
    if let Some(unit) = s.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = s[..s.len() - 1].parse::<u64>() {
            let secs = match unit {
                's' => n,
                'm' => n.saturating_mul(60),
                'h' => n.saturating_mul(3600),
                _ => n.saturating_mul(86_400),
            };
            return Ok(now_ms.saturating_sub(secs.saturating_mul(1000)));
        }
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n.saturating_mul(1000));
    }
    parse_rfc3339(s).map(|secs| secs * 1000).ok_or_else(bad)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to Unix seconds.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (rest[1..3].parse::<i64>().ok()? * 3600 + rest[4..6].parse::<i64>().ok()? * 60)
        }
    };
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        (dir, store)
    }

    fn id() -> SessionId {
        "alice/main".parse().unwrap()
    }

    #[test]
    fn records_round_trip_in_order() {
        let (_d, s) = store();
        let log = s.session(&id()).unwrap();
        log.event("created", serde_json::json!({"pid": 1})).unwrap();
        log.append_output(
            b"hello\r\n",
            SpoolMark {
                inode: 7,
                offset: 7,
            },
        )
        .unwrap();
        log.input("cli:0", "ls").unwrap();
        let all: Vec<Record> = log.records(None).map(Result::unwrap).collect();
        assert_eq!(all.len(), 3);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(all[1].body, Body::Output(b"hello\r\n".to_vec()));
        assert_eq!(
            all[2].body,
            Body::Input {
                source: "cli:0".into(),
                text: "ls".into()
            }
        );
        assert_eq!(
            log.spool_mark().unwrap(),
            SpoolMark {
                inode: 7,
                offset: 7
            }
        );
        assert!(all[0].mono_ns > 0 && all[0].wall_ms > 1_700_000_000_000);
    }

    #[test]
    fn large_output_is_chunked_and_compressed() {
        let (_d, s) = store();
        let log = s.session(&id()).unwrap();
        let text: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("{i:08}\n").into_bytes())
            .collect();
        let stored = log
            .append_output(
                &text,
                SpoolMark {
                    inode: 1,
                    offset: text.len() as u64,
                },
            )
            .unwrap();
        assert!(stored < text.len() as u64 / 2, "{stored} vs {}", text.len());
        let mut raw = Vec::new();
        export(&log, Format::Raw, &ExportOptions::default(), &mut raw).unwrap();
        assert_eq!(raw, text);
        assert_eq!(log.records(None).count(), text.len().div_ceil(MAX_CHUNK));
    }

    #[test]
    fn retention_drops_only_whole_oldest_records() {
        let (_d, s) = store();
        let log = s.session(&id()).unwrap();
        let chunks: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'a' + i; 1000]).collect();
        for (i, c) in chunks.iter().enumerate() {
            log.append_output(
                c,
                SpoolMark {
                    inode: 1,
                    offset: (i as u64 + 1) * 1000,
                },
            )
            .unwrap();
        }
        let each = log.stored_bytes() / 10;
        let dropped = log
            .apply_retention(Retention {
                max_bytes: each * 4,
                max_age: Duration::from_secs(3600),
            })
            .unwrap();
        assert_eq!(dropped, 6);
        let left: Vec<Vec<u8>> = log
            .records(None)
            .map(|r| match r.unwrap().body {
                Body::Output(b) => b,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(left, chunks[6..].to_vec(), "the newest whole chunks remain");
        // The spool mark is not a record and survives retention.
        assert_eq!(log.spool_mark().unwrap().offset, 10_000);
        // Age: everything is older than zero seconds.
        log.apply_retention(Retention {
            max_bytes: u64::MAX,
            max_age: Duration::ZERO,
        })
        .unwrap();
        assert_eq!(log.records(None).count(), 0);
    }

    #[test]
    fn text_rendering_drops_escapes() {
        assert_eq!(to_text(b"\x1b[1;31mred\x1b[0m plain\r\n"), "red plain\n");
        assert_eq!(to_text(b"abc\x08\x08X\r\n"), "aXc\n");
        assert_eq!(to_text(b"50%\r100%\r\n"), "100%\n");
        assert_eq!(
            to_text("\x1b]0;title\x07caf\u{e9}\n".as_bytes()),
            "caf\u{e9}\n"
        );
        assert_eq!(to_text(b"a\tb\n"), "a       b\n");
        assert_eq!(to_text(b"no newline"), "no newline\n");
    }

    #[test]
    fn markers_never_split_an_output_line() {
        let (_d, s) = store();
        let log = s.session(&id()).unwrap();
        log.append_output(b"$ ", SpoolMark::default()).unwrap();
        log.input("cli:0", "ls\n").unwrap();
        log.append_output(b"ls\r\nfile\r\n", SpoolMark::default())
            .unwrap();
        let mut out = Vec::new();
        export(&log, Format::Text, &ExportOptions::default(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "$ ls");
        assert!(
            lines[1].starts_with("[tmuxd ") && lines[1].ends_with("input from cli:0] ls"),
            "{text}"
        );
        assert_eq!(lines[2], "file");
        let output_only: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| !l.starts_with("[tmuxd "))
            .collect();
        assert_eq!(output_only.join("\n") + "\n", to_text(b"$ ls\r\nfile\r\n"));
    }

    #[test]
    fn text_export_greps_lines() {
        let (_d, s) = store();
        let log = s.session(&id()).unwrap();
        log.append_output(b"one\r\ntwo\r\nthree\r\n", SpoolMark::default())
            .unwrap();
        let mut out = Vec::new();
        let opts = ExportOptions {
            since_ms: None,
            grep: Some(regex::Regex::new("^t").unwrap()),
        };
        export(&log, Format::Text, &opts, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "two\nthree\n");
    }

    #[test]
    fn asciicast_keeps_utf8_split_across_chunks() {
        let (_d, s) = store();
        let log = s.session(&id()).unwrap();
        let e = "é".as_bytes();
        log.event("resize", serde_json::json!({"cols": 100, "rows": 30}))
            .unwrap();
        log.append_output(&[b'a', e[0]], SpoolMark::default())
            .unwrap();
        log.append_output(&[e[1], b'b'], SpoolMark::default())
            .unwrap();
        let mut out = Vec::new();
        export(&log, Format::Asciicast, &ExportOptions::default(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(
            (
                header["version"].as_u64(),
                header["width"].as_u64(),
                header["height"].as_u64()
            ),
            (Some(2), Some(100), Some(30))
        );
        let data: String = lines
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e[1] == "o")
            .map(|e| e[2].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(data, "aéb");
    }

    #[test]
    fn since_parsing() {
        let now = 1_795_242_527_000;
        assert_eq!(parse_since("10m", now), Ok(now - 600_000));
        assert_eq!(parse_since("2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_since("1795242527", now), Ok(1_795_242_527_000));
        assert_eq!(
            parse_since("2026-11-21T06:28:47Z", now),
            Ok(1_795_242_527_000)
        );
        assert_eq!(
            parse_since("2026-11-21T07:28:47+01:00", now),
            Ok(1_795_242_527_000)
        );
        assert_eq!(
            parse_since("2026-11-21T06:28:47.5Z", now),
            Ok(1_795_242_527_000)
        );
        for bad in [
            "yesterday",
            "10x",
            "2026-13-01T00:00:00Z",
            "",
            "-5m",
            "2026-11-21",
        ] {
            let e = parse_since(bad, now).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn database_in_use_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let _first = Store::open(&path).unwrap();
        let e = Store::open(&path).err().expect("refused").to_string();
        assert!(
            e.contains("in use") && e.contains(&path.display().to_string()),
            "{e}"
        );
        assert!(!e.contains("damaged"), "{e}");
    }

    #[test]
    fn damaged_database_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(Store::open(&path).unwrap());
        std::fs::write(path.join("conf"), b"\xff\xfegarbage").unwrap();
        let e = Store::open(&path).err().expect("refused");
        let msg = e.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("damaged"),
            "{msg}"
        );
        assert!(path.join("conf").exists(), "nothing discarded");
    }
}
