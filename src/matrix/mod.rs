//! The Matrix channel (`[matrix]`): the daemon as a bot account on a
//! homeserver. Each user with `matrix_ids` gets a private room with those
//! accounts, where the bot posts the questions their agents ask (with the
//! options) and when a turn is done. In that room, and from those
//! accounts only:
//! - an option's key answers the question on screen (the same answering
//!   as the page's: the question must still be there, policies apply);
//! - any other message is a command for `main` (or `SESSION: text`),
//!   typed only after a reply `YES CODE` from the same account (a code of
//!   its own, single-use, ten minutes), as with mail.
//!
//! Everything else (other accounts, other rooms) is refused and written to
//! `STATE_DIR/matrix/audit.jsonl` (who, decision, why; never the text).
//! Rooms, the sync position and pending confirmations are kept in
//! `STATE_DIR/matrix/state.json`, written before anything is typed, so a
//! restart neither loses a confirmation nor types one twice.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::{Live, UserConfig};
use crate::names::{Name, SessionId};
use crate::supervisor::Supervisor;

mod client;
mod notify;

use client::Client;

/// How long a confirmation code stays valid.
const CONFIRM_TTL_S: u64 = 600;
/// Pending confirmations kept at most (all users).
const MAX_PENDING: usize = 1000;
/// How long one sync waits for news at the homeserver.
const SYNC_WAIT_MS: u64 = 10_000;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    /// tmuxd user -> their room.
    rooms: HashMap<String, String>,
    /// The sync position: events before it are handled.
    since: Option<String>,
    /// Confirmation code -> the command waiting for it.
    pending: HashMap<String, Pending>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    session: String,
    text: String,
    /// The account that asked: only its YES counts.
    sender: String,
    created: u64,
}

/// The bot: its client, its state (std lock: never held across `.await`),
/// and where it keeps it.
#[derive(Clone)]
struct Bot {
    client: Client,
    me: String,
    dir: PathBuf,
    state: Arc<Mutex<State>>,
    config: Live,
    supervisor: Supervisor,
    /// The question last posted per session (each is posted once).
    posted: Arc<Mutex<HashMap<SessionId, String>>>,
}

/// Runs the bot until `cancel`; returns at once without `[matrix]`.
pub async fn run(config: Live, supervisor: Supervisor, cancel: CancellationToken) {
    let current = config.get();
    let Some(m) = current.matrix.clone() else {
        return;
    };
    let token = match tokio::fs::read_to_string(&m.access_token_file).await {
        Ok(t) => t.trim().to_owned(),
        Err(e) => {
            tracing::error!(file = %m.access_token_file.display(), error = %crate::config::io_reason(&e), "cannot read matrix.access_token_file: the Matrix bot is off");
            return;
        }
    };
    let dir = current.state_dir.join("matrix");
    let state: State = std::fs::read(dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let bot = Bot {
        client: Client::new(m.homeserver.clone(), token),
        me: m.user_id.clone(),
        dir,
        state: Arc::new(Mutex::new(state)),
        config,
        supervisor,
        posted: Arc::default(),
    };
    if let Some(rec) = bot.supervisor.recorder().cloned() {
        tokio::spawn(bot.clone().notify(rec, cancel.clone()));
    }
    let mut wait = Duration::from_secs(1);
    loop {
        let step = async {
            bot.ensure_rooms().await?;
            bot.sync_once().await
        };
        let failed = tokio::select! {
            _ = cancel.cancelled() => return,
            r = step => r.err(),
        };
        let Some(e) = failed else {
            wait = Duration::from_secs(1);
            continue;
        };
        tracing::warn!(error = %e, "Matrix homeserver: trying again in {wait:?}");
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

impl Bot {
    /// Writes the state (small; off the async worker's own work).
    fn save(&self) -> Result<(), String> {
        let text = serde_json::to_vec(&*self.state.lock().expect("matrix lock"))
            .map_err(|e| e.to_string())?;
        tokio::task::block_in_place(|| {
            std::fs::create_dir_all(&self.dir)?;
            crate::auth::write_private(&self.dir.join("state.json"), &text)
        })
        .map_err(|e| e.to_string())
    }

    fn audit(&self, sender: &str, user: Option<&Name>, decision: &str, why: &str) {
        tracing::info!(sender, user = ?user.map(|u| u.as_str()), decision, why, "matrix message");
        let line = serde_json::json!({
            "time": crate::clock::unix_now(), "sender": sender,
            "user": user.map(|u| u.as_str()), "decision": decision, "reason": why,
        });
        let written = tokio::task::block_in_place(|| {
            std::fs::create_dir_all(&self.dir)?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(self.dir.join("audit.jsonl"))?;
            std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes())
        });
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot write the Matrix audit log");
        }
    }

    /// A room for each user with Matrix accounts, made once.
    async fn ensure_rooms(&self) -> Result<(), String> {
        let config = self.config.get();
        for user in config.users.iter().filter(|u| !u.matrix_ids.is_empty()) {
            let known = self
                .state
                .lock()
                .expect("matrix lock")
                .rooms
                .contains_key(user.name.as_str());
            if known {
                continue;
            }
            let room = self
                .client
                .create_room(&format!("tmuxd: {}", user.name), &user.matrix_ids)
                .await?;
            tracing::info!(user = %user.name, room, "Matrix room made");
            self.state
                .lock()
                .expect("matrix lock")
                .rooms
                .insert(user.name.to_string(), room.clone());
            self.save()?;
            // Questions already on screen before the room existed.
            let server = self.supervisor.server(&user.name);
            if let (Some(rec), Ok(server)) = (self.supervisor.recorder(), server) {
                for s in server.list().await.unwrap_or_default() {
                    if let Some(q) = rec.question(&s.id) {
                        self.post_question(&room, &s.id, &q).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// One sync: every new message in a user's room handled, in order.
    async fn sync_once(&self) -> Result<(), String> {
        let since = self.state.lock().expect("matrix lock").since.clone();
        let first = since.is_none();
        let wait = if first { 0 } else { SYNC_WAIT_MS };
        let v = self.client.sync(since.as_deref(), wait).await?;
        let rooms: HashMap<String, String> = {
            let st = self.state.lock().expect("matrix lock");
            st.rooms
                .iter()
                .map(|(u, r)| (r.clone(), u.clone()))
                .collect()
        };
        // The first sync only finds where now is: history is not news.
        if !first {
            if let Some(joined) = v["rooms"]["join"].as_object() {
                for (room, r) in joined {
                    let events = r["timeline"]["events"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    for e in events.iter().filter(|e| e["type"] == "m.room.message") {
                        let sender = e["sender"].as_str().unwrap_or("");
                        let body = e["content"]["body"].as_str().unwrap_or("");
                        if sender != self.me {
                            self.message(room, rooms.get(room), sender, body).await;
                        }
                    }
                }
            }
        }
        if let Some(next) = v["next_batch"].as_str() {
            self.state.lock().expect("matrix lock").since = Some(next.to_owned());
            self.save()?;
        }
        Ok(())
    }

    pub(super) async fn say(&self, room: &str, text: &str) {
        if let Err(e) = self.client.send(room, text).await {
            tracing::warn!(error = %e, "cannot post in the Matrix room");
        }
    }

    /// One message in `room` (`user`'s, if it is one of ours) from `sender`.
    async fn message(&self, room: &str, user: Option<&String>, sender: &str, body: &str) {
        let config = self.config.get();
        let user = user.and_then(|u| config.users.iter().find(|c| c.name.as_str() == u));
        let Some(user) = user else {
            return self.audit(sender, None, "refused", "not a room of the bot's users");
        };
        if !user.matrix_ids.iter().any(|m| m == sender) {
            self.audit(
                sender,
                Some(&user.name),
                "refused",
                "not one of the user's matrix_ids",
            );
            return self
                .say(room, &format!("Only {}'s Matrix accounts may talk to tmuxd here: that message was ignored.", user.name))
                .await;
        }
        let text = body.trim();
        if let Some(code) = text
            .strip_prefix("YES ")
            .or_else(|| text.strip_prefix("yes "))
        {
            return self.confirm(room, user, sender, code.trim()).await;
        }
        if self.answer(room, user, sender, text).await {
            return;
        }
        self.command(room, user, sender, text).await;
    }

    /// An option's key answers the question on one of the user's screens.
    async fn answer(&self, room: &str, user: &UserConfig, sender: &str, text: &str) -> bool {
        let Some(rec) = self.supervisor.recorder() else {
            return false;
        };
        let Ok(server) = self.supervisor.server(&user.name) else {
            return false;
        };
        let sessions = server.list().await.unwrap_or_default();
        let asked = sessions.iter().find_map(|s| {
            let q = rec.question(&s.id)?;
            q.question
                .options
                .iter()
                .any(|o| o.key.eq_ignore_ascii_case(text))
                .then(|| (s.id.clone(), q))
        });
        let Some((id, q)) = asked else {
            return false;
        };
        let key = q
            .question
            .options
            .iter()
            .find(|o| o.key.eq_ignore_ascii_case(text))
            .map(|o| o.key.clone())
            .unwrap_or_default();
        let who = format!("matrix:{sender}");
        let answered = crate::answer::answer(
            &self.supervisor,
            &id,
            &q.id,
            &key,
            crate::answer::Channel::Matrix,
            &who,
        )
        .await;
        match answered {
            Ok(()) => {
                self.audit(
                    sender,
                    Some(&user.name),
                    "answered",
                    &format!("{id}: option {key}"),
                );
                self.say(room, &format!("Answered {id}: {key}")).await;
            }
            Err(e) => {
                self.audit(sender, Some(&user.name), "refused", &e.to_string());
                self.say(room, &format!("Not answered: {e}")).await;
            }
        }
        true
    }

    /// A command: asks for confirmation first (a code of its own).
    async fn command(&self, room: &str, user: &UserConfig, sender: &str, text: &str) {
        if text.is_empty() {
            return;
        }
        let (session, command) = match text.split_once(": ") {
            Some((s, rest)) if Name::new(s).is_ok() && !rest.trim().is_empty() => {
                (s.to_owned(), rest.trim())
            }
            _ => ("main".to_owned(), text),
        };
        let flags = crate::risk::flags(command);
        if let Some(blocked) = flags.iter().find(|f| user.block.iter().any(|b| b == *f)) {
            self.audit(
                sender,
                Some(&user.name),
                "refused",
                &format!("blocked risk flag {blocked}"),
            );
            return self
                .say(
                    room,
                    &format!(
                        "Refused: the command raises {blocked}, which {} blocks.",
                        user.name
                    ),
                )
                .await;
        }
        let code = code();
        let full = {
            let mut st = self.state.lock().expect("matrix lock");
            let now = crate::clock::unix_now();
            st.pending.retain(|_, p| p.created + CONFIRM_TTL_S > now);
            let full = st.pending.len() >= MAX_PENDING;
            if !full {
                st.pending.insert(
                    code.clone(),
                    Pending {
                        session: session.clone(),
                        text: command.to_owned(),
                        sender: sender.to_owned(),
                        created: now,
                    },
                );
            }
            full
        };
        if full {
            return self
                .say(
                    room,
                    "Too many commands wait for confirmation: try again later.",
                )
                .await;
        }
        if let Err(e) = self.save() {
            tracing::error!(error = %e, "cannot store a Matrix confirmation");
            return self
                .say(room, "internal error: nothing will be typed")
                .await;
        }
        self.audit(
            sender,
            Some(&user.name),
            "pending",
            &format!("{}/{session}", user.name),
        );
        let flags = if flags.is_empty() {
            "none".to_owned()
        } else {
            flags.join(", ")
        };
        self.say(
            room,
            &format!(
                "Type into {}/{session}:\n\n    {command}\n\nRisk flags: {flags}\nReply YES {code} within 10 minutes to type it. Nothing has been typed yet.",
                user.name
            ),
        )
        .await;
    }

    /// `YES CODE`: the pending command typed, once.
    async fn confirm(&self, room: &str, user: &UserConfig, sender: &str, code: &str) {
        let now = crate::clock::unix_now();
        let taken = {
            let mut st = self.state.lock().expect("matrix lock");
            match st.pending.get(code) {
                Some(p) if p.sender == sender && p.created + CONFIRM_TTL_S > now => {
                    st.pending.remove(code)
                }
                _ => None,
            }
        };
        let Some(p) = taken else {
            self.audit(
                sender,
                Some(&user.name),
                "refused",
                "an unknown, expired or used code",
            );
            return self
                .say(
                    room,
                    "No such confirmation (unknown, expired or used): nothing was typed.",
                )
                .await;
        };
        // Stored as used before it is typed: a restart never types it twice.
        if let Err(e) = self.save() {
            tracing::error!(error = %e, "cannot store a Matrix confirmation");
            return self.say(room, "internal error: nothing was typed").await;
        }
        let Ok(session) = Name::new(&p.session) else {
            return;
        };
        let id = SessionId::new(user.name.clone(), session);
        match self
            .supervisor
            .send(&id, &p.text, true, &format!("matrix:{sender}"))
            .await
        {
            Ok(()) => {
                self.audit(sender, Some(&user.name), "typed", &id.to_string());
                self.say(room, &format!("Typed into {id}.")).await;
            }
            Err(e) => {
                self.audit(sender, Some(&user.name), "failed", &e.to_string());
                self.say(room, &format!("Not typed: {e}")).await;
            }
        }
    }
}

/// A confirmation code: 8 characters of base32.
fn code() -> String {
    let mut b = [0u8; 5];
    getrandom::fill(&mut b).expect("the system's random source");
    data_encoding::BASE32_NOPAD.encode(&b)
}
