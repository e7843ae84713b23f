//! `GET /api/events`: the dashboard's live view, server-sent events. The
//! caller's sessions as one `sessions` event at once, and again whenever the
//! daemon's own state changes (a session created, killed, its agent exiting
//! or restarting, its agent's state, a viewer joining or leaving), never on
//! a timer: an idle dashboard costs no wakeups, and nothing polls tmux.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use futures_util::Stream;

use super::{session_views, ApiError, Auth};
use crate::auth::Identity;
use crate::web::AppState;

/// Changes this close together make one event.
const COALESCE: Duration = Duration::from_millis(50);

struct Feed {
    state: AppState,
    identity: Identity,
    changes: tokio::sync::watch::Receiver<u64>,
    first: bool,
}

pub async fn events(
    State(state): State<AppState>,
    Auth(identity): Auth,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // The caller may see something: refuse now rather than in the stream.
    session_views(&state, &identity).await?;
    let feed = Feed {
        changes: state.supervisor.changes(),
        state,
        identity,
        first: true,
    };
    Ok(Sse::new(futures_util::stream::unfold(feed, next)))
}

/// The next event: at once for the first, else after the next change;
/// none once the daemon shuts down.
async fn next(mut feed: Feed) -> Option<(Result<Event, Infallible>, Feed)> {
    if !feed.first {
        let cancel = feed.state.cancel.clone();
        tokio::select! {
            changed = feed.changes.changed() => changed.ok()?,
            _ = cancel.cancelled() => return None,
        }
        tokio::select! {
            _ = tokio::time::sleep(COALESCE) => {}
            _ = cancel.cancelled() => return None,
        }
        feed.changes.borrow_and_update();
    }
    feed.first = false;
    let event = match session_views(&feed.state, &feed.identity).await {
        Ok(views) => Event::default()
            .event("sessions")
            .json_data(views)
            .unwrap_or_else(|_| Event::default().event("error").data("cannot list sessions")),
        Err(_) => Event::default().event("error").data("cannot list sessions"),
    };
    Some((Ok(event), feed))
}
