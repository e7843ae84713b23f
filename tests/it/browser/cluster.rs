//! Users spread over three nodes behind real nginx configured by `tmuxd
//! router-config --nginx` (issue 18): each user's page, API and terminal
//! work through the front and land on their own node; a token never
//! reaches another node's sessions; a node that dies leaves the others'
//! users unaffected.

use super::*;
use crate::common::client::{call, close_of, connect, hello, read_until, type_line};
use crate::common::nginx::{free_port, Haproxy, Nginx};

/// Node `name` of the cluster in `cluster_file`, on `port`, with every
/// user in its config (the shared `[[users]]`).
fn node(cluster_file: &std::path::Path, name: &str, port: u16) -> Env {
    Env::new(&format!(
        "[agent]\ncommand = [\"bash\", \"--norc\", \"--noprofile\"]\n\
         [web]\nlisten = \"127.0.0.1:{port}\"\n\
         [cluster]\nfile = \"{}\"\nnode = \"{name}\"\nsecret_file = \"{}\"\n\
         [[users]]\nname = \"alice\"\n[[users]]\nname = \"bob\"\n[[users]]\nname = \"carol\"\n",
        cluster_file.display(),
        cluster_file.with_file_name("node-secret").display()
    ))
}

/// `router-config FLAG` for a front on a free port: the port, the front's
/// URL and the generated config.
fn front_config(env: &Env, flag: &str) -> (u16, String, String) {
    let port = free_port();
    let generated = env.ok(&[
        "router-config",
        flag,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    (port, format!("http://127.0.0.1:{port}"), generated)
}

/// The ids of the sessions `token` lists through `front`, sorted.
fn listed(front: &str, token: &str) -> Vec<String> {
    let (status, body) = call("GET", &format!("{front}/api/sessions"), Some(token), None);
    assert_eq!(status, 200, "{body}");
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let mut ids: Vec<String> = all
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn users_on_three_nodes_behind_nginx_each_reach_their_own() {
    let shared = tempfile::Builder::new()
        .prefix("tmuxd-t")
        .tempdir_in("/tmp")
        .unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let cluster = shared.path().join("cluster.toml");
    std::fs::write(
        &cluster,
        format!(
            "[[nodes]]\nname = \"a\"\nurl = \"http://127.0.0.1:{}\"\nusers = [\"alice\"]\n\
             [[nodes]]\nname = \"b\"\nurl = \"http://127.0.0.1:{}\"\nusers = [\"bob\"]\n\
             [[nodes]]\nname = \"c\"\nurl = \"http://127.0.0.1:{}\"\nusers = [\"carol\"]\n",
            ports[0], ports[1], ports[2]
        ),
    )
    .unwrap();
    std::fs::write(
        shared.path().join("node-secret"),
        "node-credential-0f9e8d7c6b5a\n",
    )
    .unwrap();
    let mut envs: Vec<Env> = ["a", "b", "c"]
        .iter()
        .zip(ports)
        .map(|(n, p)| node(&cluster, n, p))
        .collect();
    // Each node serves its own users only: a token for another is refused.
    assert!(envs[0].ok(&["check-config"]).contains("OK (1 user)"));
    let out = envs[0].run(&["token", "bob"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let alice = envs[0].token("alice", "user");
    let bob = envs[1].token("bob", "user");
    let carol = envs[2].token("carol", "user");
    let admin = envs[0].token("alice", "admin");
    let _daemons: Vec<_> = envs.iter_mut().map(|e| e.serve()).collect();

    let (port, front, generated) = front_config(&envs[0], "--nginx");
    let _nginx = Nginx::start(shared.path(), port, &generated);

    // The API through the front: each token lands on its user's node and
    // sees that user's sessions.
    for (token, user) in [(&alice, "alice"), (&bob, "bob"), (&carol, "carol")] {
        assert_eq!(listed(&front, token), [format!("{user}/main")]);
    }
    // An admin sees every node's sessions: their node asks the others with
    // the node credential, which nothing else has.
    assert_eq!(
        listed(&front, &admin),
        ["alice/main", "bob/main", "carol/main"]
    );
    let node_list = format!("http://127.0.0.1:{}/api/cluster/sessions", ports[1]);
    assert_eq!(call("GET", &node_list, Some(&admin), None).0, 401);

    // A token for alice never reaches bob's node's sessions: the path
    // routes to bob's node, which does not know it.
    let m = marker();
    let (status, body) = call(
        "POST",
        &format!("{front}/api/sessions/bob/main/input"),
        Some(&alice),
        Some(json!({"text": format!("echo alice-was-here-{m}")})),
    );
    assert_eq!(status, 401, "{body}");
    let (status, _) = call(
        "GET",
        &format!("http://127.0.0.1:{}/api/sessions", ports[1]),
        Some(&alice),
        None,
    );
    assert_eq!(status, 401, "alice's token at bob's node directly");

    // WebSocket terminals through the front, each on its own node.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for (token, user) in [(&alice, "alice"), (&bob, "bob")] {
            let mut ws = connect(
                &front,
                &format!("/ws/sessions/{user}/main"),
                Some(token),
                Some(&front),
            )
            .await
            .unwrap_or_else(|s| panic!("{user}'s terminal: HTTP {s}"));
            hello(&mut ws).await;
            type_line(&mut ws, &format!("echo {user}-via-front-$((6*7))")).await;
            read_until(&mut ws, &format!("{user}-via-front-42"), 10).await;
        }
        // Bob's node does not know alice's token: the terminal closes
        // unauthenticated.
        let mut ws = connect(&front, "/ws/sessions/bob/main", Some(&alice), Some(&front))
            .await
            .expect("upgrade");
        assert_eq!(close_of(&mut ws).await.0, 4401);
    });
    assert!(!envs[1].pane_text("bob", "main").contains("alice-was-here"));

    // The same through HAProxy configured by `router-config --haproxy`.
    let (hport, hfront, generated) = front_config(&envs[0], "--haproxy");
    let _haproxy = Haproxy::start(shared.path(), hport, &generated);
    // A login as the page makes it (the token in the header too): routed to
    // alice's node, whose cookies then route the rest.
    let resp = crate::common::client::http()
        .post(&format!("{hfront}/api/login"))
        .header("Authorization", &format!("Bearer {alice}"))
        .header("Origin", &hfront)
        .send_json(json!({"token": alice}))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    assert!(
        cookies.iter().any(|c| c == "tmuxd_user=alice"),
        "{cookies:?}"
    );
    let mut resp = crate::common::client::http()
        .get(&format!("{hfront}/api/sessions"))
        .header("Cookie", &cookies.join("; "))
        .call()
        .unwrap();
    let body = resp.body_mut().read_to_string().unwrap();
    assert!(
        body.contains("\"alice/main\"") && !body.contains("bob/main"),
        "{body}"
    );
    for (token, user) in [(&alice, "alice"), (&bob, "bob")] {
        assert_eq!(listed(&hfront, token), [format!("{user}/main")]);
    }
    let (status, _) = call(
        "POST",
        &format!("{hfront}/api/sessions/bob/main/input"),
        Some(&alice),
        Some(json!({"text": "echo no"})),
    );
    assert_eq!(status, 401);
    rt.block_on(async {
        let mut ws = connect(&hfront, "/ws/sessions/bob/main", Some(&bob), Some(&hfront))
            .await
            .unwrap_or_else(|s| panic!("bob's terminal via HAProxy: HTTP {s}"));
        hello(&mut ws).await;
        type_line(&mut ws, "echo bob-via-haproxy-$((6*7))").await;
        read_until(&mut ws, "bob-via-haproxy-42", 10).await;
    });

    // The page: alice signs in at the front, her dashboard and terminal
    // come from her node (routed by the cookie her node set, then by path).
    let driver = Driver::start();
    let b = driver.browser_sized(1280, 800);
    b.login_and_open(&front, &alice, "alice/main");
    b.type_into(
        ".xterm-helper-textarea",
        &format!("echo page-$((6*7))-{m}{ENTER}"),
    );
    b.wait_screen(&format!("page-42-{m}"));
    assert!(envs[0]
        .pane_text("alice", "main")
        .contains(&format!("page-42-{m}")));
    let cookies = b.script("return document.cookie;");
    assert!(
        cookies.as_str().unwrap_or("").contains("tmuxd_user=alice"),
        "{cookies}"
    );

    // Node c dies: carol's requests fail at the front, alice and bob carry on.
    envs[2].kill_daemons();
    let (status, _) = call("GET", &format!("{front}/api/sessions"), Some(&carol), None);
    assert_eq!(status, 502, "carol's node is down");
    assert_eq!(listed(&front, &alice), ["alice/main"]);
    assert_eq!(listed(&front, &bob), ["bob/main"]);
    assert_eq!(
        listed(&front, &admin),
        ["alice/main", "bob/main"],
        "the dead node left out"
    );
    b.type_into(
        ".xterm-helper-textarea",
        &format!("echo after-$((6*7))-{m}{ENTER}"),
    );
    b.wait_screen(&format!("after-42-{m}"));
}
