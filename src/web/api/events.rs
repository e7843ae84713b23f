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

use super::{session_views, ApiError, Auth, SessionView};
use crate::auth::Identity;
use crate::web::AppState;

/// Changes this close together make one event.
const COALESCE: Duration = Duration::from_millis(50);

struct Feed {
    state: AppState,
    identity: Identity,
    changes: tokio::sync::watch::Receiver<u64>,
    /// The list read when the stream opened: its first event.
    first: Option<Vec<SessionView>>,
}

pub async fn events(
    State(state): State<AppState>,
    Auth(identity): Auth,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Read now, so a caller that may see nothing is refused before the
    // stream opens; it is also the first event.
    let first = session_views(&state, &identity).await?;
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
            wait_for_change(&mut feed).await?;
            session_views(&feed.state, &feed.identity).await
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

/// Returns after the next change (and any that follow within
/// [`COALESCE`]); `None` on shutdown.
async fn wait_for_change(feed: &mut Feed) -> Option<()> {
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
    Some(())
}
