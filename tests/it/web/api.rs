//! The HTTP API, login cookie, page headers and shutdown.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_sessions_auth_and_isolation() {
    let mut env = env();
    let alice = env.token("alice", "user");
    let bob = env.token("bob", "user");
    let admin = env.token("bob", "admin");
    let d = env.serve();
    let base = d.url();
    let api = |p: &str| format!("{base}{p}");

    assert_eq!(call("GET", &api("/api/sessions"), None, None).0, 401);
    assert_eq!(
        call("GET", &api("/api/sessions"), Some("alice.nope"), None).0,
        401
    );
    let (status, body) = call("GET", &api("/api/sessions"), Some(&alice), None);
    assert_eq!(status, 200);
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        list.iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["alice/main"]
    );
    let (_, body) = call("GET", &api("/api/sessions"), Some(&admin), None);
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        call("GET", &api("/api/me"), Some(&admin), None).1,
        r#"{"user":"bob","role":"admin","mail":false,"passkeys":false}"#
    );

    // Create, type into, and delete a session.
    let (status, body) = call(
        "POST",
        &api("/api/sessions"),
        Some(&alice),
        Some(serde_json::json!({"id": "docs"})),
    );
    assert_eq!(status, 201, "{body}");
    assert!(body.contains(r#""id":"alice/docs""#), "{body}");
    assert_eq!(
        call(
            "POST",
            &api("/api/sessions"),
            Some(&alice),
            Some(serde_json::json!({"id": "docs"}))
        )
        .0,
        409
    );
    let m = marker();
    let (status, body) = call(
        "POST",
        &api("/api/sessions/alice/docs/input"),
        Some(&alice),
        Some(serde_json::json!({"text": format!("echo api-{m}")})),
    );
    assert_eq!(status, 204, "{body}");
    env.wait_pane("alice", "docs", &format!("api-{m}"));
    assert_eq!(
        call(
            "DELETE",
            &api("/api/sessions/alice/docs"),
            Some(&alice),
            None
        )
        .0,
        204
    );
    assert_eq!(
        call(
            "DELETE",
            &api("/api/sessions/alice/docs"),
            Some(&alice),
            None
        )
        .0,
        404
    );
    let (status, body) = call(
        "DELETE",
        &api("/api/sessions/alice/main"),
        Some(&alice),
        None,
    );
    assert_eq!(status, 400, "{body}");

    // Bob cannot see, type into or kill Alice's sessions: the same 404 as
    // for sessions that do not exist. An admin can.
    let input = serde_json::json!({"text": "echo x"});
    let (s1, b1) = call(
        "POST",
        &api("/api/sessions/alice/main/input"),
        Some(&bob),
        Some(input.clone()),
    );
    let (s2, b2) = call(
        "POST",
        &api("/api/sessions/bob/nope/input"),
        Some(&bob),
        Some(input.clone()),
    );
    assert_eq!((s1, s2), (404, 404));
    assert_eq!(b1.replace("alice/main", "X"), b2.replace("bob/nope", "X"));
    assert_eq!(
        call(
            "POST",
            &api("/api/sessions"),
            Some(&bob),
            Some(serde_json::json!({"id": "alice/x"}))
        )
        .0,
        404
    );
    assert_eq!(
        call(
            "POST",
            &api("/api/sessions/alice/main/input"),
            Some(&admin),
            Some(input.clone())
        )
        .0,
        204
    );

    // Bad input is refused with a message naming it; tmux is never asked.
    let (status, body) = call(
        "POST",
        &api("/api/sessions"),
        Some(&alice),
        Some(serde_json::json!({"id": "a.b"})),
    );
    assert_eq!(status, 400);
    assert!(body.contains("a.b"), "{body}");
    let (status, _) = call(
        "POST",
        &api("/api/sessions/alice/%23%7Bpid%7D/input"),
        Some(&alice),
        Some(input.clone()),
    );
    assert_eq!(status, 400);
    let (status, body) = call(
        "POST",
        &api("/api/sessions/alice/main/input"),
        Some(&alice),
        Some(serde_json::json!({"text": "\u{1b}[2J"})),
    );
    assert_eq!(status, 400);
    assert!(body.contains("control character"), "{body}");
    let (status, body) = call(
        "POST",
        &api("/api/sessions/alice/main/input"),
        Some(&alice),
        Some(serde_json::json!({"txt": 1})),
    );
    assert_eq!(status, 400, "{body}");
    // No token or secret in the log.
    let log = d.log();
    for t in [&alice, &bob, &admin] {
        let secret = t.split('.').nth(1).unwrap();
        assert!(!log.contains(secret), "a token reached the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_cookie() {
    let mut env = env();
    let alice = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let agent = http();

    let mut resp = agent
        .post(&format!("{base}/api/login"))
        .send_json(serde_json::json!({"token": alice}))
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        204,
        "{}",
        resp.body_mut().read_to_string().unwrap()
    );
    let cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    // The cookie authenticates reads...
    let mut me = agent
        .get(&format!("{base}/api/me"))
        .header("Cookie", &pair)
        .call()
        .unwrap();
    assert_eq!(
        me.body_mut().read_to_string().unwrap(),
        r#"{"user":"alice","role":"user","mail":false,"passkeys":false}"#
    );
    // ...and state changes only with our Origin (CSRF).
    let input = serde_json::json!({"text": "echo c"});
    let url = format!("{base}/api/sessions/alice/main/input");
    let no_origin = agent
        .post(&url)
        .header("Cookie", &pair)
        .send_json(input.clone())
        .unwrap();
    assert_eq!(no_origin.status().as_u16(), 403);
    let with_origin = agent
        .post(&url)
        .header("Cookie", &pair)
        .header("Origin", &base)
        .send_json(input.clone())
        .unwrap();
    assert_eq!(with_origin.status().as_u16(), 204);
    // The cookie opens a terminal too.
    let mut req = format!("{}/ws/sessions/alice/main", base.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("Cookie", pair.parse().unwrap());
    req.headers_mut().insert("Origin", base.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(hello(&mut ws).await["user"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_is_served_with_security_headers() {
    let mut env = env();
    let d = env.serve();
    let base = d.url();
    for (path, ctype) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/icon.svg", "image/svg+xml"),
        ("/manifest.webmanifest", "application/manifest+json"),
    ] {
        let mut r = http().get(&format!("{base}{path}")).call().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ctype),
            "{path}"
        );
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'"));
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let body = r.body_mut().read_to_string().unwrap();
        assert!(!body.is_empty());
    }
    // The bundle is the real xterm.js, embedded (no CDN).
    let js = http()
        .get(&format!("{base}/assets/app.js"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(js.contains("xterm"), "xterm.js is in the bundle");
    assert!(!js.contains("cdn.jsdelivr") && !js.contains("unpkg.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_viewers_a_close_frame() {
    let mut env = env();
    let alice = env.token("alice", "user");
    let d = env.serve();
    let base = d.url();
    let mut ws = connect(&base, "/ws/sessions/alice/main", Some(&alice), None)
        .await
        .unwrap();
    hello(&mut ws).await;
    let pid = env.session("alice/main").unwrap()["agent_pid"]
        .as_u64()
        .unwrap();
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(close_of(&mut ws).await.0, 1001);
    assert!(env.reap(d.pid).success());
    assert!(crate::common::alive(pid), "the agent keeps running");
}
