//! Keystrokes from terminal viewers, grouped into input records: what one
//! viewer types up to Enter (or Ctrl-C, Ctrl-D) is one record, written at
//! once, before the output it causes. A pause of [`TYPING_PAUSE`], another
//! viewer typing, the viewer leaving or [`TYPING_MAX`] bytes end a record
//! too. The terminal's own replies are never recorded (`replies`).

use super::*;

/// A pause this long ends an input record.
pub const TYPING_PAUSE: Duration = Duration::from_secs(1);

/// An input record of keystrokes holds at most this many bytes.
const TYPING_MAX: usize = 1024;

/// Keystrokes not yet recorded.
pub(super) struct Typing {
    source: String,
    bytes: Vec<u8>,
    last: Instant,
}

/// Keys that end an input record.
fn ends_record(typed: &[u8]) -> bool {
    typed
        .iter()
        .any(|b| matches!(b, b'\r' | b'\n' | 0x03 | 0x04))
}

impl Recorder {
    /// Records keystrokes from a terminal viewer (grouped; see the module
    /// doc); durable with the next flush (not one fsync per key).
    pub fn keystrokes(&self, id: &SessionId, source: &str, bytes: &[u8]) {
        let typed = replies::typed_part(bytes);
        if typed.is_empty() {
            return;
        }
        let now = Instant::now();
        let (done, started) = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get_mut(id) else {
                drop(sessions);
                return self.write_typing(id, source, &typed);
            };
            let mut done = Vec::new();
            if t.typing.as_ref().is_some_and(|p| p.source != source) {
                done.extend(t.typing.take());
            }
            let new_record = t.typing.is_none();
            let p = t.typing.get_or_insert_with(|| Typing {
                source: source.to_owned(),
                bytes: Vec::new(),
                last: now,
            });
            p.bytes.extend_from_slice(&typed);
            p.last = now;
            if ends_record(&typed) || p.bytes.len() >= TYPING_MAX {
                done.extend(t.typing.take());
            }
            (done, new_record && t.typing.is_some())
        };
        for p in done {
            self.write_typing(id, &p.source, &p.bytes);
        }
        if started {
            // The loop times the new record's pause. Later keys only move
            // its end later: the loop, waking at the earlier one, finds it
            // not due and waits again (a wakeup per pause, not per key).
            self.0.retimed.notify_one();
        }
    }

    /// A viewer left: what it typed since its last record is recorded.
    pub fn typing_done(&self, id: &SessionId, source: &str) {
        let done = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            sessions
                .get_mut(id)
                .filter(|t| t.typing.as_ref().is_some_and(|p| p.source == source))
                .and_then(|t| t.typing.take())
        };
        if let Some(p) = done {
            self.write_typing(id, &p.source, &p.bytes);
        }
    }

    /// When the earliest typing pause ends, if anyone is typing.
    pub(super) fn next_typing_pause(&self) -> Option<Instant> {
        let sessions = self.0.sessions.lock().expect("sessions lock");
        sessions
            .values()
            .filter_map(|t| Some(t.typing.as_ref()?.last + TYPING_PAUSE))
            .min()
    }

    /// Records keystrokes paused since `TYPING_PAUSE` (all of them if
    /// `all`, at shutdown).
    pub(super) fn typing_pauses(&self, all: bool) {
        let now = Instant::now();
        let done: Vec<(SessionId, Typing)> = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            sessions
                .iter_mut()
                .filter(|(_, t)| {
                    t.typing
                        .as_ref()
                        .is_some_and(|p| all || p.last + TYPING_PAUSE <= now)
                })
                .filter_map(|(id, t)| Some((id.clone(), t.typing.take()?)))
                .collect()
        };
        for (id, p) in done {
            self.write_typing(&id, &p.source, &p.bytes);
        }
    }

    fn write_typing(&self, id: &SessionId, source: &str, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        if let Err(e) = self.log(id).and_then(|l| l.input(source, &text)) {
            tracing::error!(session = %id, error = %e, "cannot record input");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ends() {
        assert!(ends_record(b"ls\r"));
        assert!(ends_record(b"\x03"));
        assert!(!ends_record(b"echo hi"));
        assert!(!ends_record(b"\x1b[A"));
    }
}
