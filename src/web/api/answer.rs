//! `POST /api/sessions/{user}/{session}/answer`: answers the question the
//! session's agent shows (see [`crate::answer`]).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{authorize, json_body, path_id, session_error};
use crate::answer::{AnswerFailed, Channel};
use crate::recorder::AnswerError;
use crate::web::{ApiError, AppState, Auth};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// The pending question's id, as listed with the session.
    question: String,
    /// The option's key ("1", "y").
    option: String,
}

pub async fn answer(
    State(state): State<AppState>,
    Auth(identity): Auth,
    headers: HeaderMap,
    Path((user, session)): Path<(String, String)>,
    body: Result<Json<AnswerBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, true)?;
    let body = json_body(body)?;
    // The page logs in with a cookie; scripts present a bearer token.
    let channel = match state.ambient(&headers) {
        true => Channel::Page,
        false => Channel::Api,
    };
    if channel == Channel::Page {
        let risky = state
            .supervisor
            .recorder()
            .and_then(|rec| rec.question(&id))
            .is_some_and(|q| !crate::risk::flags(&q.question.detail.join("\n")).is_empty());
        if let Some(ask) = crate::web::passkeys::needs_reauth(&state, &headers, risky) {
            return Ok(ask);
        }
    }
    let answered = crate::answer::answer(
        &state.supervisor,
        &id,
        &body.question,
        &body.option,
        channel,
        identity.user.as_str(),
    );
    match answered.await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(AnswerFailed::Refused(e)) => {
            let status = match e {
                AnswerError::NoSuchOption(..) => StatusCode::BAD_REQUEST,
                _ => StatusCode::CONFLICT,
            };
            Err(ApiError::new(status, e.to_string()))
        }
        Err(AnswerFailed::Policy(why)) => Err(ApiError::new(StatusCode::FORBIDDEN, why)),
        Err(AnswerFailed::Session(e)) => Err(session_error(e)),
        Err(e @ AnswerFailed::NoTranscripts) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
    }
}
