//! The Matrix client-server API calls the bot makes (v3): create a room,
//! send a text message, sync.

use base64::Engine;

use crate::config::HttpUrl;

/// The bot's connection: homeserver and access token.
#[derive(Clone)]
pub struct Client {
    pub homeserver: HttpUrl,
    token: String,
}

impl Client {
    pub fn new(homeserver: HttpUrl, token: String) -> Client {
        Client { homeserver, token }
    }

    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let url = HttpUrl {
            path: format!("{}{path}", self.homeserver.path.trim_end_matches('/')),
            ..self.homeserver.clone()
        };
        let mut headers = vec![("Authorization", format!("Bearer {}", self.token))];
        if body.is_some() {
            headers.push(("Content-Type", "application/json".into()));
        }
        let answer = crate::httpc::send(crate::httpc::Request {
            method,
            url: &url,
            headers,
            body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            max_answer: 8 << 20,
        })
        .await?;
        let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if answer.status != 200 {
            return Err(format!(
                "status {}: {}",
                answer.status,
                v["errcode"].as_str().unwrap_or("")
            ));
        }
        Ok(v)
    }

    /// A private room with `invite`; its id.
    pub async fn create_room(&self, name: &str, invite: &[String]) -> Result<String, String> {
        let v = self
            .call(
                hyper::Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(serde_json::json!({
                    "preset": "private_chat", "is_direct": true, "name": name, "invite": invite,
                })),
            )
            .await?;
        v["room_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no room_id".into())
    }

    /// Posts `text` in `room`.
    pub async fn send(&self, room: &str, text: &str) -> Result<(), String> {
        let mut txn = [0u8; 12];
        getrandom::fill(&mut txn).map_err(|e| e.to_string())?;
        let txn = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(txn);
        self.call(
            hyper::Method::PUT,
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
                crate::httpc::encode(room)
            ),
            Some(serde_json::json!({ "msgtype": "m.text", "body": text })),
        )
        .await
        .map(|_| ())
    }

    /// One sync (long-polling up to `timeout_ms`) after `since`.
    pub async fn sync(
        &self,
        since: Option<&str>,
        timeout_ms: u64,
    ) -> Result<serde_json::Value, String> {
        let mut path = format!("/_matrix/client/v3/sync?timeout={timeout_ms}");
        if let Some(s) = since {
            path.push_str(&format!("&since={}", crate::httpc::encode(s)));
        }
        self.call(hyper::Method::GET, &path, None).await
    }
}
