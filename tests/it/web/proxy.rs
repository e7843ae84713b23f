//! Sign-in by an authenticating reverse proxy (issue 17): real nginx with
//! basic auth in front of tmuxd sets the identity header and the shared
//! secret. Through nginx the API and a terminal work as that user; the
//! header sent straight to tmuxd (without the secret, or a wrong one) is
//! refused; a person nginx knows but tmuxd does not is refused, not made.

use super::*;
use crate::common::nginx::{free_port, Nginx};

const SECRET: &str = "proxy-shared-secret-7f3a9c";

/// nginx basic auth (alice, mallory) in front of `upstream`, as the
/// README's snippet sets it up.
fn nginx(dir: &std::path::Path, port: u16, upstream: &str) -> Nginx {
    std::fs::write(
        dir.join("htpasswd"),
        "alice:{PLAIN}alice-pw\nmallory:{PLAIN}mallory-pw\n",
    )
    .unwrap();
    let d = dir.display();
    Nginx::start(
        dir,
        port,
        &format!(
            "server {{\n    listen 127.0.0.1:{port};\n\
               location / {{\n\
                 auth_basic \"tmuxd\";\n      auth_basic_user_file {d}/htpasswd;\n\
                 proxy_pass {upstream};\n\
                 proxy_http_version 1.1;\n\
                 proxy_set_header Host $host:$server_port;\n\
                 proxy_set_header Upgrade $http_upgrade;\n\
                 proxy_set_header Connection $http_connection;\n\
                 proxy_set_header X-Remote-User $remote_user;\n\
                 proxy_set_header X-Tmuxd-Proxy-Secret \"{SECRET}\";\n\
                 proxy_set_header Authorization \"\";\n\
               }}\n  }}\n"
        ),
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// (status, body) of GET `url` with `headers`.
fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut r = http().get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let mut resp = r.call().unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reverse_proxy_signs_people_in_and_a_client_cannot_pretend_to_be_it() {
    let mut env = Env::new(&format!(
        "{SHELL_AGENT}[web]\nlisten = \"127.0.0.1:0\"\n\
         [web.proxy_auth]\nheader = \"X-Remote-User\"\nsecret_file = \"{{dir}}/proxy-secret\"\nfrom = [\"127.0.0.1\"]\n\
         [[users]]\nname = \"alice\"\n[[users]]\nname = \"bob\"\n"
    ));
    std::fs::write(env.path().join("proxy-secret"), format!("{SECRET}\n")).unwrap();
    let d = env.serve();
    let port = free_port();
    let front = format!("http://127.0.0.1:{port}");
    let _nginx = nginx(env.path(), port, &d.url());
    let alice = basic("alice", "alice-pw");

    // Through nginx: alice, and only her sessions.
    assert_eq!(
        get(&format!("{front}/api/me"), &[]).0,
        401,
        "nginx asks first"
    );
    let (status, me) = get(&format!("{front}/api/me"), &[("Authorization", &alice)]);
    assert_eq!(status, 200, "{me}");
    assert!(me.contains(r#""user":"alice""#), "{me}");
    let (_, sessions) = get(
        &format!("{front}/api/sessions"),
        &[("Authorization", &alice)],
    );
    assert!(
        sessions.contains("alice/main") && !sessions.contains("bob/main"),
        "{sessions}"
    );
    // A terminal through nginx, as the page opens it (with our Origin).
    let url = format!("ws://127.0.0.1:{port}/ws/sessions/alice/main");
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", alice.parse().unwrap());
    req.headers_mut().insert("Origin", front.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    hello(&mut ws).await;
    let m = marker();
    type_line(&mut ws, &format!("echo proxied-{m}")).await;
    read_until(&mut ws, &format!("proxied-{m}"), 10).await;
    // Someone nginx knows and tmuxd does not: refused, not created.
    let (status, body) = get(
        &format!("{front}/api/me"),
        &[("Authorization", &basic("mallory", "mallory-pw"))],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not a tmuxd user"), "{body}");

    // Straight to tmuxd: the header alone, or with a wrong secret, is no one.
    let direct = format!("{}/api/me", d.url());
    for headers in [
        vec![("X-Remote-User", "alice")],
        vec![
            ("X-Remote-User", "alice"),
            ("X-Tmuxd-Proxy-Secret", "guess"),
        ],
    ] {
        let (status, body) = get(&direct, &headers);
        assert_eq!(status, 401, "{headers:?}: {body}");
    }
    let (status, _) = get(
        &direct,
        &[("X-Remote-User", "alice"), ("X-Tmuxd-Proxy-Secret", SECRET)],
    );
    assert_eq!(status, 200, "the proxy's own request, from its address");
    // A state change with the proxy's identity needs our Origin, like a
    // cookie (CSRF).
    let mut resp = http()
        .post(&format!("{front}/api/sessions/alice/main/input"))
        .header("Authorization", &alice)
        .send_json(serde_json::json!({"text": "echo no-origin"}))
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        403,
        "{}",
        resp.body_mut().read_to_string().unwrap()
    );
    assert!(!d.log().contains(SECRET), "the secret reached the log");
}
