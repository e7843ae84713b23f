//! Confirmed commands, typed one at a time per session, and their answers.
//!
//! A worker per session with queued jobs takes them in order. It waits
//! until the agent is not mid-answer (its state is not `running`), marks
//! the job `typing` (durably), types it with the input recorded as
//! `email:JOB`, marks it `typed`, then waits for the agent to go from
//! running to idle or waiting (or exit), up to `result_timeout`, and queues
//! the reply with what the agent printed. After a crash, a job found in
//! `typing` is typed only if the transcript has no input from `email:JOB`:
//! a job is typed once.
//!
//! Also here, as it watches the same agent states: the optional mail to a
//! user whose session starts waiting for input (`notify_waiting`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::bridge::Bridge;
use super::state::{now_ms, Action, AuditEntry, Job, Stage};
use super::Outcome;
use crate::names::{Name, SessionId};
use crate::recorder::AgentState;
use crate::supervisor::Supervisor;
use crate::transcript::Body;

/// Most of the agent's answer put in a reply (the end is kept).
const MAX_ANSWER: usize = 32 * 1024;
/// With no output at all after typing, the answer is complete after
/// `idle_after` plus this.
const NO_OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// The recorded source of a job's input.
pub fn source(job_id: &str) -> String {
    format!("email:{job_id}")
}

fn job_session(job: &Job) -> Option<SessionId> {
    Some(SessionId::new(
        Name::new(&job.user).ok()?,
        Name::new(&job.session).ok()?,
    ))
}

/// Runs workers for sessions with jobs until `cancel`.
pub async fn run(bridge: Bridge, cancel: CancellationToken) {
    let mut running: HashSet<SessionId> = HashSet::new();
    let mut workers: JoinSet<SessionId> = JoinSet::new();
    loop {
        let sessions: Vec<SessionId> = bridge
            .store()
            .read(|st| st.jobs.iter().filter_map(job_session).collect());
        for id in sessions {
            if running.insert(id.clone()) {
                let (b, c) = (bridge.clone(), cancel.clone());
                workers.spawn(async move {
                    worker(&b, &id, &c).await;
                    id
                });
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = bridge.exec_wake().notified() => {}
            Some(done) = workers.join_next(), if !workers.is_empty() => {
                if let Ok(id) = done {
                    running.remove(&id);
                }
            }
        }
    }
    // Workers stop at their next await; their jobs stay in the state.
    workers.shutdown().await;
}

async fn worker(bridge: &Bridge, id: &SessionId, cancel: &CancellationToken) {
    while !cancel.is_cancelled() {
        let next = bridge.store().read(|st| {
            st.jobs
                .iter()
                .find(|j| job_session(j).as_ref() == Some(id))
                .cloned()
        });
        let Some(job) = next else { return };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = run_job(bridge, job) => {}
        }
    }
}

/// What came of a job.
struct JobEnd {
    decision: Outcome,
    summary: String,
    output: Option<String>,
}

async fn run_job(bridge: &Bridge, mut job: Job) {
    let Some(id) = job_session(&job) else {
        finish(
            bridge,
            &job,
            JobEnd {
                decision: Outcome::Failed,
                summary: "invalid session name".into(),
                output: None,
            },
        );
        return;
    };
    let sup = bridge.supervisor().clone();
    let Some(rec) = sup.recorder().cloned() else {
        finish(
            bridge,
            &job,
            JobEnd {
                decision: Outcome::Failed,
                summary: "recording is off".into(),
                output: None,
            },
        );
        return;
    };
    let mut states = rec.subscribe();
    let timeout = bridge.mail().result_timeout;

    if job.stage == Stage::Typing && typed_before(&sup, &id, &job.id) {
        job.stage = Stage::Typed;
        set_stage(bridge, &job);
    }
    if job.stage != Stage::Typed {
        // Not while the agent is mid-answer.
        // A chatty agent must not hold the queue forever: after
        // `result_timeout` of waiting the job fails, untyped, and says why.
        // A prompt not while the agent has exited and its restart is
        // pending either: keys sent to a dead pane are lost. (An interrupt
        // then goes to the dead pane: there is nothing left to stop.)
        if job.stage == Stage::Queued
            && !matches!(job.action, Action::New | Action::Rollback { .. })
        {
            let deadline = tokio::time::Instant::now() + timeout;
            let prompt = matches!(job.action, Action::Prompt { .. });
            while match rec.state(&id) {
                Some(AgentState::Running) => true,
                Some(AgentState::Exited { .. }) => prompt,
                _ => false,
            } {
                match tokio::time::timeout_at(deadline, states.recv()).await {
                    Ok(Ok(_) | Err(RecvError::Lagged(_))) => {}
                    Ok(Err(RecvError::Closed)) => break,
                    Err(_) => {
                        finish(
                            bridge,
                            &job,
                            JobEnd {
                                decision: Outcome::Failed,
                                summary: if matches!(
                                    rec.state(&id),
                                    Some(AgentState::Exited { .. })
                                ) {
                                    format!(
                                        "not typed: the agent has not been running for {} s; mail the command again once it runs",
                                        timeout.as_secs()
                                    )
                                } else {
                                    format!(
                                        "not typed: the agent was still busy after {} s; mail the command again when it is done",
                                        timeout.as_secs()
                                    )
                                },
                                output: None,
                            },
                        );
                        return;
                    }
                }
            }
        }
        job.stage = Stage::Typing;
        job.typed_ms = Some(now_ms());
        if !set_stage(bridge, &job) {
            return;
        }
        let src = source(&job.id);
        if let Action::Rollback { snapshot } = &job.action {
            let end = match sup.rollback(&id, snapshot, &src).await {
                Ok(before) => JobEnd {
                    decision: Outcome::Executed,
                    summary: format!(
                        "the workspace of {id} is back at snapshot {snapshot}; what it was just before is snapshot {} (mail `rollback {}` to undo)",
                        before.id, before.id
                    ),
                    output: None,
                },
                Err(e) => JobEnd {
                    decision: Outcome::Failed,
                    summary: format!("not rolled back: {}", e.message),
                    output: None,
                },
            };
            finish(bridge, &job, end);
            return;
        }
        // Mailed files land in the uploads directory first, as the user.
        if let Action::Prompt { files, .. } = &job.action {
            if let Err(why) = save_files(&sup, &id, files, &src).await {
                let end = JobEnd {
                    decision: Outcome::Failed,
                    summary: format!("not typed: {why}"),
                    output: None,
                };
                finish(bridge, &job, end);
                return;
            }
        }
        let r = match &job.action {
            Action::Prompt { text, .. } => sup.send(&id, text, true, &src).await,
            Action::Interrupt => sup.interrupt(&id, &src).await,
            Action::New => sup.create(&id).await.map(|_| ()),
            Action::Rollback { .. } => unreachable!("handled above"),
        };
        if let Err(e) = r {
            finish(
                bridge,
                &job,
                JobEnd {
                    decision: Outcome::Failed,
                    summary: format!("not typed: {}", e.for_users()),
                    output: None,
                },
            );
            return;
        }
        job.stage = Stage::Typed;
        set_stage(bridge, &job);
    }
    if matches!(job.action, Action::New) {
        finish(
            bridge,
            &job,
            JobEnd {
                decision: Outcome::Executed,
                summary: format!("{id} was created"),
                output: None,
            },
        );
        return;
    }

    let typed = job.typed_ms.unwrap_or_else(now_ms);
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis((typed + timeout.as_millis() as u64).saturating_sub(now_ms()));
    let quiet_done = tokio::time::Instant::now() + bridge.config().idle_after + NO_OUTPUT_GRACE;
    let mut saw_running = false;
    let state = loop {
        let now_state = rec.state(&id);
        match &now_state {
            Some(AgentState::Running) => saw_running = true,
            Some(s @ AgentState::Exited { .. }) => break Some(s.clone()),
            Some(s) if saw_running => break Some(s.clone()),
            Some(s) if tokio::time::Instant::now() >= quiet_done => break Some(s.clone()),
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            break None;
        }
        let wake = deadline.min(if saw_running { deadline } else { quiet_done });
        tokio::select! {
            r = states.recv() => if let Err(RecvError::Closed) = r { break None },
            _ = tokio::time::sleep_until(wake) => {}
        }
    };
    // Waiting is seen as soon as the prompt prints, before the recorder's
    // next ingest: take in what the session printed, now.
    rec.ingest_now([id.clone()].into()).await;
    let summary = match &state {
        Some(AgentState::Waiting) => format!("{id} is waiting for your input"),
        Some(AgentState::Exited { status, signal }) => match (status, signal) {
            (Some(s), _) => format!("the agent in {id} exited with status {s}"),
            (_, Some(sig)) => format!("the agent in {id} was killed by signal {sig}"),
            _ => format!("the agent in {id} exited"),
        },
        Some(_) => format!("done: {id} is idle"),
        None => format!("{id} is still running after {} s", timeout.as_secs()),
    };
    let output = sup.output_text(&id, Some(typed));
    finish(
        bridge,
        &job,
        JobEnd {
            decision: Outcome::Executed,
            summary,
            output: Some(output),
        },
    );
}

/// Saves a mailed prompt's files in `id`'s uploads directory (recorded as
/// uploads by `src`); the first that cannot be saved says why.
async fn save_files(
    sup: &crate::supervisor::Supervisor,
    id: &SessionId,
    files: &[crate::mail::state::Attachment],
    src: &str,
) -> Result<(), String> {
    if files.is_empty() {
        return Ok(());
    }
    let session = sup.session_files(id).await.map_err(|e| e.for_users())?;
    let caps = sup.workspace_config();
    for f in files {
        let bytes = f.bytes();
        let stored = crate::workspace::put(&session.place(), &caps, &f.name, &mut &bytes[..])
            .await
            .map_err(|e| format!("the attachment {:?}: {}", f.name, e.message))?;
        let detail = serde_json::json!({"path": stored.path, "bytes": stored.bytes});
        sup.record_file_event(id, "upload", src, detail);
    }
    Ok(())
}

/// Mails users with `notify_waiting` when one of their sessions starts
/// waiting for input: each new question (with its options and an address
/// that answers it), else at most once per session per ten minutes; not
/// while a mailed command to that session will report it anyway.
pub async fn notify_waiting(bridge: Bridge, cancel: CancellationToken) {
    const QUIET_FOR: Duration = Duration::from_secs(600);
    let Some(rec) = bridge.supervisor().recorder().cloned() else {
        return;
    };
    let mut changes = rec.changes();
    let mut last: HashMap<SessionId, (tokio::time::Instant, Option<String>)> = HashMap::new();
    while let Some((change, _)) = changes.next(&cancel).await {
        if change.state != AgentState::Waiting {
            continue;
        }
        let config = bridge.config();
        let Some(user) = config.user(&change.id.user).filter(|u| u.notify_waiting) else {
            continue;
        };
        let Some(to) = user.emails.first() else {
            continue;
        };
        let id = change.id;
        let question = rec.question(&id);
        // The agent's hook said a dialog is coming: mail it once it shows.
        if question.is_none() && rec.question_coming(&id) {
            continue;
        }
        let qid = question.as_ref().map(|q| q.id.clone());
        let seen = last.get(&id).is_some_and(|(t, q)| match &qid {
            Some(_) => *q == qid,
            None => t.elapsed() < QUIET_FOR,
        });
        if seen {
            continue;
        }
        let busy = bridge
            .store()
            .read(|st| st.jobs.iter().any(|j| job_session(j).as_ref() == Some(&id)));
        if busy {
            continue;
        }
        last.insert(id.clone(), (tokio::time::Instant::now(), qid));
        let thread = super::state::Thread {
            to: to.clone(),
            subject: format!("[{}] waiting for your input", id.session),
            in_reply_to: String::new(),
            references: Vec::new(),
        };
        let (body, reply_to) = match bridge.question_mail(&id, to) {
            Some((text, reply_to)) => (text, reply_to),
            None => (
                format!("{id} is waiting for your input. Its screen:\n\n{}\n\nReply to this mail with what to type (the first line is the command; it will ask for confirmation as usual).\n", rec.screen_tail(&id, 20)),
                bridge.user_address(id.user.as_str()),
            ),
        };
        let mut note = bridge.reply(&thread, &body);
        note.subject = thread.subject.clone();
        note.reply_to = Some(reply_to);
        if let Err(e) = bridge.store().update(|st| st.outbox.push(note)) {
            tracing::error!(error = %e, "cannot write the mail state");
            continue;
        }
        bridge.outbox_wake().notify_one();
    }
}

/// Whether the transcript holds the input of job `job_id`.
fn typed_before(sup: &Supervisor, id: &SessionId, job_id: &str) -> bool {
    let want = source(job_id);
    let Some(log) = sup.recorder().and_then(|r| r.log(id).ok()) else {
        return false;
    };
    let found = log.records(None).any(|r| {
        matches!(r, Ok(crate::transcript::Record { body: Body::Input { ref source, .. }, .. }) if *source == want)
    });
    found
}

/// Persists `job`'s stage; false if the state cannot be written (the job
/// stays where it was and is retried after a restart).
fn set_stage(bridge: &Bridge, job: &Job) -> bool {
    let r = bridge.store().update(|st| {
        if let Some(j) = st.jobs.iter_mut().find(|j| j.id == job.id) {
            *j = job.clone();
        }
    });
    if let Err(e) = &r {
        tracing::error!(error = %e, "cannot write the mail state");
    }
    r.is_ok()
}

/// Removes the job and queues its reply, in one commit.
fn finish(bridge: &Bridge, job: &Job, outcome: JobEnd) {
    let mail = bridge.mail();
    let mut body = format!("{}.\n\nTyped: {}\n", outcome.summary, job.action.describe());
    if let Some(out) = &outcome.output {
        let mut out = out.as_str();
        let mut clipped = false;
        if out.len() > MAX_ANSWER {
            let mut cut = out.len() - MAX_ANSWER;
            while !out.is_char_boundary(cut) {
                cut += 1;
            }
            out = &out[cut..];
            clipped = true;
        }
        body.push_str("\nWhat the agent printed");
        body.push_str(if clipped {
            " (the end of it):\n\n"
        } else {
            ":\n\n"
        });
        body.push_str(if out.is_empty() { "(nothing)" } else { out });
        body.push('\n');
    }
    if let Some(url) = &mail.web_url {
        body.push_str(&format!(
            "\nTranscript: {url}/#/t/{}/{}\n",
            job.user, job.session
        ));
    }
    let mut reply = bridge.reply(&job.thread, &body);
    // The thread goes on by mail: a reply answers the agent's question if
    // it asks one, else it is the next command.
    let asks = job_session(job).and_then(|id| bridge.question_mail(&id, &job.thread.to));
    reply.reply_to = match asks {
        Some((text, reply_to)) => {
            reply.body.push_str(&format!("\n{text}"));
            Some(reply_to)
        }
        None => Some(bridge.user_address(&job.user)),
    };
    let r = bridge.store().update(|st| {
        st.jobs.retain(|j| j.id != job.id);
        st.outbox.push(reply);
    });
    if let Err(e) = r {
        tracing::error!(error = %e, "cannot write the mail state");
        return;
    }
    bridge.audit(AuditEntry {
        ts_ms: now_ms(),
        message_id: job.thread.in_reply_to.clone(),
        from: Some(job.thread.to.clone()),
        user: Some(job.user.clone()),
        session: Some(job.session.clone()),
        decision: outcome.decision,
        reason: outcome.summary,
        command: Some(job.action.describe()),
        flags: Vec::new(),
    });
    bridge.outbox_wake().notify_one();
}
