//! The recorder's loop: waits on inotify (no polling), lets bursts pass,
//! hands quiet sessions to the ingest thread, flushes, and reclaims.

use super::*;

impl Recorder {
    /// Ingests, derives state and applies retention until `cancel`; then
    /// ingests what is left and flushes.
    pub async fn run(self, cancel: CancellationToken) {
        let Some(mut wake_rx) = self.0.wake_rx.lock().expect("wake lock").take() else {
            return;
        };
        // Catch up on everything written while the daemon was down.
        let mut dirty = self.tracked();
        // Ingested but not yet flushed: the spool keeps it until then.
        let mut unflushed: HashMap<SessionId, SpoolMark> = HashMap::new();
        loop {
            if !dirty.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(QUIET) => {}
                    _ = cancel.cancelled() => {}
                }
                if cancel.is_cancelled() {
                    break;
                }
                // Sessions that printed again meanwhile are mid-burst.
                let mut again = HashSet::new();
                self.drain_inotify(&mut again);
                while let Ok(id) = wake_rx.try_recv() {
                    dirty.insert(id);
                }
                let sessions = std::mem::take(&mut dirty);
                let (busy, ready) = self
                    .on_ingest_thread(move |rec| rec.burst_tick(sessions, again))
                    .await
                    .unwrap_or_default();
                dirty = busy;
                self.resized_and_quiet(&ready);
                if !ready.is_empty() {
                    let left = self.ingest_round(ready, &mut unflushed).await;
                    dirty.extend(left);
                }
                continue;
            }
            // Output paused: make it durable and reclaim the spool.
            if !unflushed.is_empty() {
                self.flush_and_reclaim(&mut unflushed).await;
            }
            let next = self
                .next_idle()
                .into_iter()
                .chain(self.next_typing_pause())
                .min();
            tokio::select! {
                r = self.0.inotify.readable() => match r {
                    Ok(mut guard) => {
                        guard.clear_ready();
                        self.drain_inotify(&mut dirty);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "inotify failed; transcripts stop");
                        break;
                    }
                },
                Some(id) = wake_rx.recv() => { dirty.insert(id); }
                _ = self.0.retimed.notified() => {}
                _ = sleep_until(next) => {
                    self.idle_transitions();
                    self.typing_pauses(false);
                }
                _ = cancel.cancelled() => break,
            }
        }
        // Shutdown: take in what is left and make it durable.
        self.typing_pauses(true);
        self.flush_and_reclaim(&mut unflushed).await;
        self.catch_up().await;
    }

    /// Ingests everything every tracked session's spool holds, now, and
    /// makes it durable.
    pub async fn catch_up(&self) {
        self.ingest_now(self.tracked()).await;
    }

    /// Ingests everything the spools of `ids` hold, now, and makes it
    /// durable: when this returns, what they printed is in the transcript.
    pub async fn ingest_now(&self, mut ids: HashSet<SessionId>) {
        let mut unflushed = HashMap::new();
        while !ids.is_empty() {
            ids = self.ingest_round(ids, &mut unflushed).await;
        }
        self.flush_and_reclaim(&mut unflushed).await;
    }

    /// Reads pending inotify events; marks their sessions dirty.
    pub(super) fn drain_inotify(&self, dirty: &mut HashSet<SessionId>) {
        loop {
            match self.0.inotify.get_ref().0.read_events() {
                Ok(events) if !events.is_empty() => {
                    let watches = self.0.watches.lock().expect("watches lock");
                    for ev in events {
                        let (Some(user), Some(name)) = (
                            watches.get(&ev.wd),
                            ev.name.as_deref().and_then(|n| n.to_str()),
                        ) else {
                            continue;
                        };
                        let (session, resized) = match name.strip_suffix(".out") {
                            Some(s) => (s, false),
                            None => match name.strip_suffix(".resized") {
                                Some(s) => (s, true),
                                None => continue,
                            },
                        };
                        if let Ok(id) = format!("{user}/{session}").parse::<SessionId>() {
                            if resized {
                                self.0
                                    .resized
                                    .lock()
                                    .expect("resized lock")
                                    .insert(id.clone());
                            }
                            dirty.insert(id);
                        }
                    }
                }
                _ => return,
            }
        }
    }

    /// A tick of a burst (on the ingest thread): of the `dirty` sessions,
    /// those that printed `again` since the last tick, with a backlog
    /// under [`MAX_BACKLOG`], are busy (their screens read ahead, their
    /// ingest waits for a pause); the others are ready to ingest. Returns
    /// (busy, ready).
    fn burst_tick(
        &self,
        dirty: HashSet<SessionId>,
        again: HashSet<SessionId>,
    ) -> (HashSet<SessionId>, HashSet<SessionId>) {
        let mut busy = HashSet::new();
        let mut ready = HashSet::new();
        // Each printing session's spool is looked at once per tick.
        for id in dirty.into_iter().chain(again.iter().cloned()) {
            if busy.contains(&id) || ready.contains(&id) {
                continue;
            }
            if again.contains(&id) {
                let extent = self.spool_extent(&id);
                if extent.0.saturating_sub(extent.1) < MAX_BACKLOG {
                    self.screen_ahead(&id, extent);
                    busy.insert(id);
                    continue;
                }
            }
            ready.insert(id);
        }
        (busy, ready)
    }

    /// Resized sessions that are quiet now (redrawn at their new size): the
    /// supervisor takes their screens from tmux.
    fn resized_and_quiet(&self, quiet: &HashSet<SessionId>) {
        let mut resized = self.0.resized.lock().expect("resized lock");
        for id in quiet {
            if resized.remove(id) {
                // Full: refreshes are already due; this one can wait for
                // the next resize.
                let _ = self.0.screen_requests.try_send(id.clone());
            }
        }
    }

    /// The sessions whose screens are to be taken from tmux again (once:
    /// the supervisor's).
    pub fn screen_requests(&self) -> Option<mpsc::Receiver<SessionId>> {
        self.0
            .screen_requests_rx
            .lock()
            .expect("screen requests lock")
            .take()
    }

    /// Ingests a share of the given sessions; flushes and reclaims spool
    /// space when enough has accumulated. Returns the sessions with more.
    pub(super) async fn ingest_round(
        &self,
        ids: HashSet<SessionId>,
        unflushed: &mut HashMap<SessionId, SpoolMark>,
    ) -> HashSet<SessionId> {
        let ids: Vec<SessionId> = ids.into_iter().collect();
        let Ingested { marks, left } = self
            .on_ingest_thread(move |rec| rec.ingest_all(ids))
            .await
            .unwrap_or_default();
        unflushed.extend(marks);
        let due = {
            let sessions = self.0.sessions.lock().expect("sessions lock");
            unflushed.iter().any(|(id, mark)| {
                sessions
                    .get(id)
                    .is_some_and(|t| mark.offset >= t.punched + PUNCH_EVERY)
            })
        };
        if due {
            self.flush_and_reclaim(unflushed).await;
        }
        left
    }

    /// Makes ingested data durable, then frees it from the spools.
    pub(super) async fn flush_and_reclaim(&self, unflushed: &mut HashMap<SessionId, SpoolMark>) {
        if let Err(e) = self.0.store.flush().await {
            tracing::error!(error = %e, "transcript flush failed");
            return;
        }
        // Only durable data may leave the spool.
        let marks: Vec<(SessionId, SpoolMark)> = unflushed.drain().collect();
        self.on_ingest_thread(move |rec| {
            for (id, mark) in marks {
                rec.reclaim(&id, mark);
            }
        })
        .await;
    }

    /// Spool bytes not yet in any transcript (the ingest lag).
    pub fn total_backlog(&self) -> u64 {
        self.tracked().iter().map(|id| self.backlog(id)).sum()
    }
}
