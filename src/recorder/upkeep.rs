//! The screen's upkeep: fed in spool order, read ahead of the ingest
//! during a burst, rebuilt from tmux after a restart or a resize; bytes it
//! already shows are never applied twice (`Tracked::screen_from`).

use super::*;
use crate::screen::{Captured, Screen};

/// The most a burst's screen reads ahead of the ingest per quiet tick.
const SCREEN_AHEAD: u64 = 64 * 1024;

/// Output with more than this behind it in the spool is not drawn on the
/// screen (see [`Recorder::observe_output_at`]).
const SCREEN_SKIP: u64 = 1024 * 1024;

impl Recorder {
    /// The spool's size now: output up to here is already on a screen
    /// captured after this call.
    pub fn spool_size(&self, id: &SessionId) -> u64 {
        self.spool_file(id, false)
            .ok()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len())
    }

    /// Replaces `id`'s screen with what tmux shows; output before spool
    /// offset `upto` (see [`Recorder::spool_size`]) is on it already.
    pub fn seed_screen(&self, id: &SessionId, captured: &Captured, upto: u64) {
        let profile = self.profile(id);
        let asked = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get_mut(id) else {
                return;
            };
            t.screen = Screen::from_captured(captured);
            t.screen_from = upto;
            t.screen_stale = false;
            t.reread(profile.as_deref())
        };
        if asked.is_waiting() {
            self.after_screen_change(id, asked);
        }
    }

    /// Mid-burst: the screen takes what the spool holds beyond what it
    /// shows (up to [`SCREEN_AHEAD`] bytes; more waits for the ingest), so a
    /// question drawn while the agent still prints is seen at the next
    /// quiet tick. The ingest later skips what the screen already has.
    ///
    /// `extent`: the spool's size and how much of it is ingested
    /// ([`Recorder::spool_extent`], taken this tick).
    pub(super) fn screen_ahead(&self, id: &SessionId, (size, ingested): (u64, u64)) {
        let from = {
            let sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get(id) else {
                return;
            };
            t.screen_from.max(ingested)
        };
        if size <= from || size - from > SCREEN_AHEAD {
            return self.observe_burst(id);
        }
        let Ok(file) = self.spool_file(id, false) else {
            return self.observe_burst(id);
        };
        let mut buf = vec![0u8; (size - from) as usize];
        let Ok(n) = read_full_at(&file, &mut buf, from) else {
            return self.observe_burst(id);
        };
        if let Some(t) = self.0.sessions.lock().expect("sessions lock").get_mut(id) {
            t.screen_from = from + n as u64;
        }
        self.observe_output(id, &buf[..n]);
    }

    /// Output from spool offset `at`, with `remaining` more bytes in the
    /// spool behind it: the part the screen already shows (after a seed)
    /// is skipped. Output with more than [`SCREEN_SKIP`] behind it is not
    /// drawn at all (feeding the emulator is most of a flood's cost, and
    /// such output is mostly overwritten by what follows); once the rest is
    /// in, the screen is taken from tmux instead, and the question read
    /// off that.
    pub(super) fn observe_output_at(&self, id: &SessionId, at: u64, bytes: &[u8], remaining: u64) {
        let (skip, stale) = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get_mut(id) else {
                return;
            };
            if remaining > SCREEN_SKIP {
                t.screen_stale = true;
                drop(sessions);
                return self.observe_burst(id);
            }
            (
                t.screen_from.saturating_sub(at).min(bytes.len() as u64) as usize,
                std::mem::take(&mut t.screen_stale),
            )
        };
        if stale {
            // Full (many refreshes already due): this screen is as good as
            // the output drawn on it from here on, until its next refresh.
            let _ = self.0.screen_requests.try_send(id.clone());
            return self.observe_burst(id);
        }
        if skip < bytes.len() || bytes.is_empty() {
            self.observe_output(id, &bytes[skip..]);
        }
    }
}
