//! Exports: raw bytes, text (escape sequences removed, markers between
//! lines) and asciicast v2, whole or streamed.

use super::*;

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
    /// Text lines prefixed with their time in the replay and a tab: seconds
    /// from the start, with the player's idle limit applied
    /// ([`REPLAY_IDLE_LIMIT_S`]), so the page can seek its player there.
    pub times: bool,
    /// Records up to this id only: two exports of a live session with the
    /// same bound are the same bytes ([`SessionLog::last_id`]).
    pub until_id: Option<u64>,
}

/// The longest pause the page's player replays (asciinema-player's
/// `idleTimeLimit`): longer gaps between events are cut to this.
pub const REPLAY_IDLE_LIMIT_S: f64 = 2.0;

/// Time in the replay: each gap between the asciicast's events capped at
/// [`REPLAY_IDLE_LIMIT_S`], as the player plays it.
#[derive(Default)]
struct ReplayClock {
    start_ms: Option<u64>,
    last_s: f64,
    replay_s: f64,
}

impl ReplayClock {
    /// An event of the asciicast at `wall_ms`; its time in the replay.
    fn event(&mut self, wall_ms: u64) -> f64 {
        let t0 = *self.start_ms.get_or_insert(wall_ms);
        let t = wall_ms.saturating_sub(t0) as f64 / 1000.0;
        self.replay_s += (t - self.last_s).clamp(0.0, REPLAY_IDLE_LIMIT_S);
        self.last_s = t;
        self.replay_s
    }

    /// A record that is no event of the asciicast (an input) still starts
    /// its clock.
    fn record(&mut self, wall_ms: u64) {
        self.start_ms.get_or_insert(wall_ms);
    }
}

/// `log`'s records from `since_ms` to `until_id`.
fn bounded<'a>(
    log: &'a SessionLog,
    options: &ExportOptions,
) -> impl Iterator<Item = Result<Record, StoreError>> + 'a {
    let until = options.until_id.unwrap_or(u64::MAX);
    log.records(options.since_ms)
        .take_while(move |r| r.as_ref().map_or(true, |r| r.id <= until))
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
            for r in bounded(log, options) {
                if let Body::Output(bytes) = r?.body {
                    out.write_all(&bytes)?;
                }
            }
        }
        Format::Text => {
            let mut text = TextRenderer::default();
            let mut lines = LineFilter::new(options.grep.clone(), options.times, out);
            let mut clock = ReplayClock::default();
            let mut sized = false;
            for r in bounded(log, options) {
                let r = r?;
                match r.body {
                    Body::Input { .. } => clock.record(r.wall_ms),
                    _ => lines.time = clock.event(r.wall_ms),
                }
                let marker = match r.body {
                    Body::Output(bytes) => {
                        sized = true;
                        lines.write(&text.feed(&bytes))?;
                        continue;
                    }
                    Body::Input {
                        source,
                        text: typed,
                    } => format!(
                        "[tmuxd {} input from {source}] {}\n",
                        stamp(r.wall_ms),
                        visible(typed.trim_end_matches(['\n', '\r']))
                    ),
                    Body::Event { kind, detail } => {
                        if kind == "resize" {
                            let size = (detail["cols"].as_u64(), detail["rows"].as_u64());
                            if let (Some(c), Some(rw)) = size {
                                let (c, rw) = (c.min(1000) as u16, rw.min(1000) as u16);
                                // The first size is the terminal's own.
                                if sized {
                                    lines.write(&text.resize(c, rw))?;
                                } else {
                                    text = TextRenderer::new(c, rw);
                                }
                            }
                        }
                        format!("[tmuxd {} {kind}] {detail}\n", stamp(r.wall_ms))
                    }
                };
                // Output before the marker is written first; the marker
                // itself may wait for the line being printed.
                let ready = text.marker(marker);
                lines.write(&ready)?;
            }
            lines.write(&text.flush())?;
            lines.finish()?;
        }
        Format::Asciicast => {
            let mut started: Option<u64> = None;
            let mut size = (80u32, 24u32);
            let mut events = Vec::new();
            // The header needs the first size; read it from the first
            // resize at or before the first output, if any.
            let mut utf8 = Utf8Carry::default();
            for r in bounded(log, options) {
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

pub(super) struct ChannelWriter {
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

pub(super) fn stamp(wall_ms: u64) -> String {
    crate::clock::iso8601(wall_ms / 1000)
}

/// Keeps UTF-8 sequences split across chunks together.
#[derive(Default)]
pub(super) struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    pub(super) fn push(&mut self, bytes: &[u8]) -> String {
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

/// What `log` holds from `since_ms` on, as text without tmuxd's own
/// `[tmuxd ...]` lines, trimmed (what a mailed command's result shows).
pub fn output_text(log: &SessionLog, since_ms: Option<u64>) -> String {
    let mut out = Vec::new();
    let options = ExportOptions {
        until_id: None,
        since_ms,
        ..ExportOptions::default()
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

/// Typed text on one line: line ends as `\n`, other control characters
/// in caret notation (`^[` for Escape, `^C`).
fn visible(typed: &str) -> String {
    let mut out = String::with_capacity(typed.len());
    for c in typed.chars() {
        match c {
            '\n' | '\r' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            '\x7f' => out.push_str("^?"),
            c => out.push(c),
        }
    }
    out
}

/// Writes text, keeping only lines that match a pattern when one is given,
/// each prefixed with its replay time when asked.
pub(super) struct LineFilter<'a> {
    grep: Option<regex::Regex>,
    times: bool,
    /// The replay time of what is written now.
    pub(super) time: f64,
    out: &'a mut dyn Write,
    partial: String,
}

impl<'a> LineFilter<'a> {
    pub(super) fn new(grep: Option<regex::Regex>, times: bool, out: &'a mut dyn Write) -> Self {
        LineFilter {
            grep,
            times,
            time: 0.0,
            out,
            partial: String::new(),
        }
    }

    pub(super) fn write(&mut self, text: &str) -> std::io::Result<()> {
        if self.grep.is_none() && !self.times {
            return self.out.write_all(text.as_bytes());
        }
        self.partial.push_str(text);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            self.line(&line)?;
        }
        Ok(())
    }

    fn line(&mut self, line: &str) -> std::io::Result<()> {
        if self
            .grep
            .as_ref()
            .is_some_and(|re| !re.is_match(line.trim_end_matches('\n')))
        {
            return Ok(());
        }
        if self.times {
            write!(self.out, "{:.1}\t", self.time)?;
        }
        self.out.write_all(line.as_bytes())
    }

    pub(super) fn finish(&mut self) -> std::io::Result<()> {
        if !self.partial.is_empty() && (self.grep.is_some() || self.times) {
            let rest = std::mem::take(&mut self.partial);
            self.line(&rest)?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;

    #[test]
    fn replay_time_cuts_pauses_to_the_players_idle_limit() {
        let mut c = ReplayClock::default();
        c.record(1_000); // an input starts the clock
        let near = |a: f64, b: f64| assert!((a - b).abs() < 1e-9, "{a} != {b}");
        near(c.event(1_500), 0.5);
        near(c.event(2_500), 1.5);
        // A minute's pause replays as the limit.
        near(c.event(62_500), 1.5 + REPLAY_IDLE_LIMIT_S);
        near(c.event(62_600), 1.5 + REPLAY_IDLE_LIMIT_S + 0.1);
    }

    #[test]
    fn lines_carry_their_time_when_asked() {
        let mut out = Vec::new();
        let mut f = LineFilter::new(Some(regex::Regex::new("b").unwrap()), true, &mut out);
        f.time = 1.25;
        f.write("a\nb1\n").unwrap();
        f.time = 3.0;
        f.write("b2").unwrap();
        f.finish().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "1.2\tb1\n3.0\tb2");
    }
}
