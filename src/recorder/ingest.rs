//! The ingest thread: the recorder's file work, off the async workers (the
//! page's relays run there) and at low priority. It reads each spool beyond
//! its stored offset into the transcript (a fair share per session and
//! round), reads ahead for the screen mid-burst, then frees what is durable
//! from the spool and applies retention.

use super::*;

/// Work for the ingest thread; it sends its own answer back.
pub(super) type Job = Box<dyn FnOnce(&Recorder) + Send>;

/// What one ingest round did: new marks, and the sessions that have more
/// than their share left.
#[derive(Default)]
pub(super) struct Ingested {
    pub(super) marks: Vec<(SessionId, SpoolMark)>,
    pub(super) left: HashSet<SessionId>,
}

/// Ingest runs at this niceness: recording must never slow the agent or
/// the viewers. What it has not read yet waits safely in the spool.
const INGEST_NICE: i32 = 10;

impl Recorder {
    /// Runs `work` on the ingest thread and returns its result (`None`
    /// if the thread is gone).
    pub(super) async fn on_ingest_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Recorder) -> T + Send + 'static,
    ) -> Option<T> {
        let (reply, done) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |rec| {
            let _ = reply.send(work(rec));
        });
        if self.ingest_thread().send(job).await.is_err() {
            tracing::error!("the transcript ingest thread is gone");
            return None;
        }
        done.await.ok()
    }

    /// The low-priority thread that does the recorder's file work.
    fn ingest_thread(&self) -> mpsc::Sender<Job> {
        let mut jobs = self.0.ingest_jobs.lock().expect("ingest lock");
        // A thread that ended (a job panicked) is started again.
        if let Some(tx) = jobs.as_ref().filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        // Senders wait (asynchronously) for room: the recorder's loop, and
        // the mail and answer paths that ingest before they read.
        let (tx, mut rx) = mpsc::channel::<Job>(4);
        // The thread holds only a weak handle, so it ends with the recorder.
        let weak = Arc::downgrade(&self.0);
        std::thread::Builder::new()
            .name("tmuxd-ingest".into())
            .spawn(move || {
                // SAFETY: setpriority on our own thread id; no pointers.
                unsafe {
                    libc::setpriority(
                        libc::PRIO_PROCESS,
                        nix::unistd::gettid().as_raw() as libc::id_t,
                        INGEST_NICE,
                    )
                };
                while let Some(job) = rx.blocking_recv() {
                    let Some(inner) = weak.upgrade() else { break };
                    job(&Recorder(inner));
                }
            })
            .expect("spawn the ingest thread");
        *jobs = Some(tx.clone());
        tx
    }

    /// Ingests each session until its spool is read or its [`QUANTUM`]
    /// is used (on the ingest thread).
    pub(super) fn ingest_all(&self, ids: Vec<SessionId>) -> Ingested {
        let mut done = Ingested::default();
        for id in ids {
            let mut budget = QUANTUM;
            loop {
                match self.ingest(&id) {
                    Ok(Some((mark, more))) => {
                        done.marks.push((id.clone(), mark));
                        budget = budget.saturating_sub(MAX_READ);
                        if more && budget == 0 {
                            done.left.insert(id.clone());
                        }
                        if !more || budget == 0 {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(session = %id, error = %e, "transcript ingest failed");
                        break;
                    }
                }
            }
        }
        done
    }

    /// Appends what the spool holds beyond the stored offset (at most
    /// MAX_READ). Returns the new mark and whether more is left.
    pub(super) fn ingest(&self, id: &SessionId) -> Result<Option<(SpoolMark, bool)>, StoreError> {
        let path = self.spool_path(id);
        let file = match self.spool_file(id, false) {
            Ok(f) => {
                self.note_refused(id, None);
                f
            }
            Err(Refused::NotFound) => return Ok(None),
            Err(refused) => {
                self.note_refused(id, Some(&refused));
                return Ok(None);
            }
        };
        let meta = file
            .metadata()
            .map_err(|e| StoreError::BadRecord(e.to_string()))?;
        let log = match self.0.sessions.lock().expect("sessions lock").get(id) {
            Some(t) => t.log.clone(),
            None => return Ok(None),
        };
        let mut mark = log.spool_mark()?;
        if mark.inode != 0 && mark.inode != meta.ino() {
            tracing::warn!(session = %id, path = %path.display(), "spool file was replaced; reading the new one from its start");
            log.event(
                "spool-replaced",
                serde_json::json!({"ingested_offset": mark.offset}),
            )?;
            mark = SpoolMark {
                inode: meta.ino(),
                offset: 0,
            };
            self.reset_punched(id);
        } else if meta.len() < mark.offset {
            tracing::warn!(session = %id, path = %path.display(), size = meta.len(), offset = mark.offset, "spool file shrank; reading it from its start");
            log.event(
                "spool-shrank",
                serde_json::json!({"size": meta.len(), "ingested_offset": mark.offset}),
            )?;
            mark = SpoolMark {
                inode: meta.ino(),
                offset: 0,
            };
            self.reset_punched(id);
        }
        mark.inode = meta.ino();
        // cat only appends; a hole past what was ingested was made by
        // someone else (a sparse file) and holds no output: skip it.
        let data = next_data(&file, mark.offset, meta.len());
        if data > mark.offset {
            log.event(
                "spool-hole-skipped",
                serde_json::json!({"from": mark.offset, "to": data}),
            )?;
            mark.offset = data;
            if data == meta.len() {
                log.append_output(&[], mark)?;
                return Ok(Some((mark, false)));
            }
        }
        let available = meta.len().saturating_sub(mark.offset);
        if available == 0 {
            return Ok(None);
        }
        let take = available.min(MAX_READ);
        let mut buf = vec![0u8; take as usize];
        let n = read_full_at(&file, &mut buf, mark.offset)
            .map_err(|e| StoreError::BadRecord(e.to_string()))?;
        buf.truncate(n);
        if buf.is_empty() {
            return Ok(None);
        }
        let new = SpoolMark {
            inode: mark.inode,
            offset: mark.offset + buf.len() as u64,
        };
        let stored = log.append_output(&buf, new)?;
        crate::metrics::add(&crate::metrics::COUNTERS.transcript_bytes, buf.len() as u64);
        if let Some(t) = self.0.sessions.lock().expect("sessions lock").get_mut(id) {
            t.stored = t.stored.map(|s| s + stored);
        }
        self.observe_output_at(id, mark.offset, &buf, available - buf.len() as u64);
        Ok(Some((new, take < available)))
    }

    pub(super) fn reset_punched(&self, id: &SessionId) {
        if let Some(t) = self.0.sessions.lock().expect("sessions lock").get_mut(id) {
            t.punched = 0;
            t.screen_from = 0;
        }
    }

    /// Frees ingested spool data (whole blocks) and applies retention.
    pub(super) fn reclaim(&self, id: &SessionId, mark: SpoolMark) {
        let (punched, log, stored, age_due) =
            match self.0.sessions.lock().expect("sessions lock").get(id) {
                Some(t) => (
                    t.punched,
                    t.log.clone(),
                    t.stored,
                    t.age_checked.is_none_or(|at| at.elapsed() >= AGE_CHECK),
                ),
                None => return,
            };
        let upto = mark.offset & !4095;
        if upto > punched {
            let file = self.spool_file(id, true).map_err(std::io::Error::other);
            match file.and_then(|f| punch(&f, upto)) {
                Ok(()) => {
                    if let Some(t) = self.0.sessions.lock().expect("sessions lock").get_mut(id) {
                        t.punched = upto;
                    }
                }
                Err(e) => tracing::warn!(session = %id, error = %e, "cannot reclaim spool space"),
            }
        }
        // Retention scans the log: only when it may be over its size, and
        // hourly for age.
        let stored = stored.unwrap_or_else(|| log.stored_bytes());
        let retention = *self.0.retention.read().expect("retention lock");
        if stored <= retention.max_bytes && !age_due {
            self.set_stored(id, Some(stored), None);
            return;
        }
        match log.apply_retention(retention) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(session = %id, dropped = n, "transcript retention dropped old chunks")
            }
            Err(e) => tracing::error!(session = %id, error = %e, "transcript retention failed"),
        }
        self.set_stored(id, Some(log.stored_bytes()), Some(Instant::now()));
    }

    pub(super) fn set_stored(
        &self,
        id: &SessionId,
        stored: Option<u64>,
        age_checked: Option<Instant>,
    ) {
        if let Some(t) = self.0.sessions.lock().expect("sessions lock").get_mut(id) {
            t.stored = stored;
            if age_checked.is_some() {
                t.age_checked = age_checked;
            }
        }
    }
}
