//! The page's live views, server-sent events driven by the daemon's own
//! state changes, never by a timer: an idle page costs no wakeups, and
//! nothing polls tmux. `GET /api/events`: the caller's sessions as one
//! `sessions` event at once, and again whenever a session is created or
//! killed, its agent exits, restarts or changes state, or a viewer joins or
//! leaves. `GET /api/mail/events`: a `mail` event at once and whenever the
//! pending commands or the audit log change (the page then reads them).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use futures_util::Stream;

use super::cluster::visible_sessions;
use super::{ApiError, Auth};
use crate::auth::Identity;
use crate::web::AppState;

/// Changes this close together make one event.
const COALESCE: Duration = Duration::from_millis(50);

struct Feed {
    state: AppState,
    identity: Identity,
    changes: tokio::sync::watch::Receiver<u64>,
    /// The list read when the stream opened: its first event.
    first: Option<Vec<super::cluster::Listed>>,
}

pub async fn events(
    State(state): State<AppState>,
    Auth(identity): Auth,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Read now, so a caller that may see nothing is refused before the
    // stream opens; it is also the first event.
    let first = visible_sessions(&state, &identity).await?;
    let feed = Feed {
        changes: state.supervisor.changes(),
        state,
        identity,
        first: Some(first),
    };
    Ok(Sse::new(futures_util::stream::unfold(feed, next)))
}

/// The next event: at once for the first, else after the next change;
/// none once the daemon shuts down.
async fn next(mut feed: Feed) -> Option<(Result<Event, Infallible>, Feed)> {
    let views = match feed.first.take() {
        Some(views) => Ok(views),
        None => {
            wait_for_change(&mut feed.changes, &feed.state.cancel).await?;
            visible_sessions(&feed.state, &feed.identity).await
        }
    };
    let event = match views {
        Ok(views) => Event::default()
            .event("sessions")
            .json_data(views)
            .unwrap_or_else(|_| Event::default().event("error").data("cannot list sessions")),
        Err(_) => Event::default().event("error").data("cannot list sessions"),
    };
    Some((Ok(event), feed))
}

/// `GET /api/mail/events`: a `mail` event now and after each change to the
/// caller-visible mail state (its data is the change count).
pub async fn mail_events(
    State(state): State<AppState>,
    Auth(_identity): Auth,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let changes = super::mail::bridge(&state)?.store().changes();
    let cancel = state.cancel.clone();
    let stream = futures_util::stream::unfold(
        (changes, cancel, true),
        |(mut changes, cancel, first)| async move {
            if !first {
                wait_for_change(&mut changes, &cancel).await?;
            }
            let n = *changes.borrow_and_update();
            let event = Event::default().event("mail").data(n.to_string());
            Some((Ok(event), (changes, cancel, false)))
        },
    );
    Ok(Sse::new(stream))
}

/// Returns after the next change (and any that follow within
/// [`COALESCE`]); `None` on shutdown.
async fn wait_for_change(
    changes: &mut tokio::sync::watch::Receiver<u64>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Option<()> {
    tokio::select! {
        changed = changes.changed() => changed.ok()?,
        _ = cancel.cancelled() => return None,
    }
    tokio::select! {
        _ = tokio::time::sleep(COALESCE) => {}
        _ = cancel.cancelled() => return None,
    }
    changes.borrow_and_update();
    Some(())
}
