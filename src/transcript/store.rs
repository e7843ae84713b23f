//! The sled database: one tree per session, appends (output and the
//! spool mark in one batch), flushes, retention.

use super::*;

/// The transcript database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

/// Current wall-clock ms and monotonic ns.
pub fn now() -> (u64, u64) {
    let wall = crate::clock::unix_now_ms();
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

    pub(super) fn try_open(path: &Path) -> Result<Store, StoreError> {
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

impl SessionLog {
    pub(super) fn record(&self, body: Body) -> Result<Record, StoreError> {
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
    /// The id of the newest record (0 with none).
    pub fn last_id(&self) -> u64 {
        self.tree
            .scan_prefix([RECORD_PREFIX])
            .next_back()
            .and_then(|kv| kv.ok())
            .and_then(|(k, _)| k.get(1..9).and_then(|b| b.try_into().ok()))
            .map(u64::from_be_bytes)
            .unwrap_or(0)
    }

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
