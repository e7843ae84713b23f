//! The sessions of every node, for an admin: a node answers
//! `GET /api/cluster/sessions` to the other nodes (the node credential
//! in `X-Tmuxd-Node-Secret`, `[cluster] secret_file`, compared in constant
//! time), and an admin's list (`GET /api/sessions`, the event stream)
//! takes each other node's at once, each within its own deadline; a node
//! that does not answer is left out, named in the log.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::{session_views, ApiError};
use crate::auth::{Identity, Role};
use crate::web::AppState;

/// The header that carries the node credential.
pub const NODE_SECRET_HEADER: &str = "x-tmuxd-node-secret";

/// How long another node may take to list its sessions.
const NODE_DEADLINE: Duration = Duration::from_secs(3);

/// At most this much of another node's list is read.
const MAX_LIST: usize = 8 * 1024 * 1024;

/// The node credential, if this node is in a cluster with one.
async fn node_secret(state: &AppState) -> Option<String> {
    let path = state.config().cluster.as_ref()?.secret_file.clone()?;
    match tokio::fs::read_to_string(&path).await {
        Ok(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => {
            tracing::error!(path = %path.display(), "cannot read the cluster's node credential");
            None
        }
    }
}

/// `GET /api/cluster/sessions`: every session of this node, for another
/// node with the credential.
pub async fn node_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<super::SessionView>>, ApiError> {
    let presented = headers
        .get(NODE_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = match node_secret(&state).await {
        Some(secret) => crate::auth::constant_time_eq(secret.as_bytes(), presented.as_bytes()),
        None => false,
    };
    if !ok {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "not a node of this cluster",
        ));
    }
    let node = Identity {
        user: crate::names::Name::main(),
        role: Role::Admin,
    };
    session_views(&state, &node).await.map(Json)
}

/// A session in a list: this node's as it serializes, another node's as
/// that node sent it.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub enum Listed {
    Here(Box<super::SessionView>),
    There(serde_json::Value),
}

/// What `identity` may see: this node's sessions, and for an admin in a
/// cluster with a node credential, every other node's too.
pub(super) async fn visible_sessions(
    state: &AppState,
    identity: &Identity,
) -> Result<Vec<Listed>, ApiError> {
    let mut out: Vec<Listed> = session_views(state, identity)
        .await?
        .into_iter()
        .map(|v| Listed::Here(Box::new(v)))
        .collect();
    let config = state.config();
    let (Role::Admin, Some(cluster)) = (identity.role, &config.cluster) else {
        return Ok(out);
    };
    let Some(secret) = node_secret(state).await else {
        return Ok(out);
    };
    let others = cluster
        .cluster
        .nodes
        .iter()
        .filter(|n| n.name != cluster.node);
    let asks = others.map(|n| {
        let secret = secret.clone();
        async move { (n, remote_sessions(&n.url, &secret).await) }
    });
    for (node, listed) in futures_util::future::join_all(asks).await {
        match listed {
            Ok(list) => out.extend(list.into_iter().map(Listed::There)),
            Err(e) => {
                tracing::warn!(node = %node.name, error = %e, "cannot list another node's sessions; leaving them out")
            }
        }
    }
    Ok(out)
}

async fn remote_sessions(url: &str, secret: &str) -> Result<Vec<serde_json::Value>, String> {
    let target = crate::config::HttpUrl::parse(&format!("{url}/api/cluster/sessions"))
        .ok_or_else(|| format!("{url} is not a URL"))?;
    let ask = crate::httpc::send(crate::httpc::Request {
        method: hyper::Method::GET,
        url: &target,
        headers: vec![(NODE_SECRET_HEADER, secret.to_owned())],
        body: Vec::new(),
        max_answer: MAX_LIST,
    });
    let answer = tokio::time::timeout(NODE_DEADLINE, ask)
        .await
        .map_err(|_| format!("no answer within {NODE_DEADLINE:?}"))??;
    if answer.status != 200 {
        return Err(format!("HTTP {}", answer.status));
    }
    serde_json::from_slice(&answer.body).map_err(|e| format!("not a session list: {e}"))
}
