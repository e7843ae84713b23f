//! How an agent ended: its status or signal and when, as the launcher
//! records it in the session (`status N at T`) and the API shows it.

use serde::Serialize;

/// How an agent ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ExitInfo {
    /// Exit status, when it exited.
    pub status: Option<i32>,
    /// Signal number, when it was killed.
    pub signal: Option<i32>,
    /// Unix time, when known.
    pub at: Option<u64>,
}

impl ExitInfo {
    pub fn encode(&self) -> String {
        let what = match (self.status, self.signal) {
            (_, Some(sig)) => format!("signal {sig}"),
            (Some(st), None) => format!("status {st}"),
            (None, None) => "unknown".to_owned(),
        };
        format!("{what} at {}", self.at.unwrap_or(0))
    }

    pub fn decode(s: &str) -> Option<ExitInfo> {
        let mut it = s.split(' ');
        let (kind, value, _, at) = (it.next()?, it.next()?, it.next()?, it.next()?);
        let value = value.parse().ok();
        let at = at.parse().ok().filter(|t| *t != 0);
        match kind {
            "status" => Some(ExitInfo {
                status: value,
                signal: None,
                at,
            }),
            "signal" => Some(ExitInfo {
                status: None,
                signal: value,
                at,
            }),
            _ => None,
        }
    }

    /// Human-readable: `status 127 (command not found) at 2026-...`.
    pub fn describe(&self) -> String {
        let mut s = match (self.status, self.signal) {
            (_, Some(sig)) => format!("signal {sig}"),
            (Some(127), None) => "status 127 (command not found)".to_owned(),
            (Some(126), None) => "status 126 (not executable)".to_owned(),
            (Some(st), None) => format!("status {st}"),
            (None, None) => "unknown".to_owned(),
        };
        if let Some(at) = self.at {
            s.push_str(" at ");
            s.push_str(&crate::clock::iso8601(at));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_info_round_trips() {
        for e in [
            ExitInfo {
                status: Some(127),
                signal: None,
                at: Some(5),
            },
            ExitInfo {
                status: None,
                signal: Some(9),
                at: Some(7),
            },
        ] {
            assert_eq!(ExitInfo::decode(&e.encode()), Some(e));
        }
        assert_eq!(ExitInfo::decode("garbage"), None);
        let e = ExitInfo {
            status: Some(127),
            signal: None,
            at: Some(0),
        };
        assert!(e.describe().contains("command not found"));
    }
}
