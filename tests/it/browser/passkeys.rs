//! Passkeys (issue 17): in a real browser with ChromeDriver's virtual
//! authenticator (CTAP2, user verification), alice signs in with a token,
//! adds a passkey, signs out, and signs in again with the passkey alone;
//! `tmuxd logins` lists that login and revokes it. A sign-in answer for a
//! challenge never issued is refused.

use super::*;

impl Browser {
    /// ChromeDriver's virtual authenticator: a platform passkey store that
    /// verifies the user at once.
    fn virtual_authenticator(&self) {
        let v = post(
            &format!("{}/webauthn/authenticator", self.url),
            json!({
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                "hasUserVerification": true, "isUserVerified": true, "isUserConsenting": true,
            }),
        );
        assert!(v["value"].is_string(), "no virtual authenticator: {v}");
    }
}

#[test]
fn a_passkey_added_in_the_page_signs_its_user_in_again() {
    let Added {
        b,
        _driver,
        _d,
        env,
        base,
        token,
    } = &mut added(
        "[agent]\ncommand = [\"sh\"]\n",
        "",
        "[[users]]\nname = \"alice\"\n[[users]]\nname = \"bob\"\n",
    );
    let (b, env, base, token) = (&*b, &*env, base.as_str(), token.as_str());
    assert_eq!(
        b.text(".dash .error"),
        "Passkey added: you can sign in with it."
    );
    let stored = std::fs::read_to_string(env.path().join("state/passkeys.json")).unwrap();
    assert!(
        stored.contains("\"user\":\"alice\"") && !stored.contains(token),
        "{stored}"
    );

    // Signed out, the passkey alone signs her in again.
    b.click("#logout");
    wait_for(20, "the sign-in screen", || {
        b.visible("#passkey-login").then_some(())
    });
    b.click("#passkey-login");
    wait_for(20, "alice's dashboard", || {
        b.visible("[data-session=\"alice/main\"]").then_some(())
    });
    let me = b.script_async(
        "const done = arguments[arguments.length - 1]; fetch('/api/me').then(r => r.json()).then(done)",
        json!([]),
    );
    assert_eq!(me["user"], "alice", "{me}");

    // The logins, listed and revocable: revoking the passkey's ends it at
    // once in the running daemon.
    let list = env.ok(&["logins"]);
    let line = list
        .lines()
        .find(|l| l.contains("alice") && l.contains("passkey"))
        .unwrap_or_else(|| panic!("no passkey login listed: {list}"));
    // The token's login ended at sign-out.
    assert_eq!(list.lines().count(), 2, "{list}");
    let id = line.split_whitespace().next().unwrap();
    assert_eq!(
        env.ok(&["logins", "--revoke", id]).trim(),
        format!("revoked login {id}")
    );
    let status = b.script_async(
        "const done = arguments[arguments.length - 1]; fetch('/api/me').then(r => done(r.status))",
        json!([]),
    );
    assert_eq!(status, 401, "a revoked login still works");
    let out = env.run(&["logins", "--revoke", id]);
    assert_eq!(out.status.code(), Some(2));

    // An answer to a challenge this server never issued: refused.
    let mut r = http()
        .post(&format!("{base}/api/passkeys/login/finish"))
        .header("Origin", base)
        .send_json(json!({
            "id": "AAAA",
            "clientDataJson": "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiQUFBQSJ9",
            "authenticatorData": "AAAA",
            "signature": "AAAA",
        }))
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
}

#[test]
fn a_risky_answer_on_the_page_asks_for_the_passkey_again() {
    // The question's dialog shows a destructive command: a risky answer.
    let Added { b, env, .. } = &mut added(
        "[agent]\ncommand = [\"sh\", \"-c\", \"echo 'rm -rf build'; printf 'Run shell command? (Y)es/(N)o [Yes]: '; read a; echo \\\"answered-$a\\\"; exec cat\"]\nprofile = \"aider\"\n",
        "reauth_risky = true\n",
        "[[users]]\nname = \"alice\"\n",
    );
    let (b, env) = (&*b, &*env);

    wait_for(20, "the question's buttons", || {
        b.visible("button.option[data-key=\"y\"]").then_some(())
    });
    // Without showing the passkey again, the page's answer is held back.
    let held = b.script_async(
        "const done = arguments[arguments.length - 1]; fetch('/api/sessions').then(r => r.json()).then(list => \
         fetch('/api/sessions/alice/main/answer', {method: 'POST', headers: {'Content-Type': 'application/json'}, \
         body: JSON.stringify({question: list.find(s => s.id === 'alice/main').question.id, option: 'y'})})) \
         .then(r => r.json().then(j => done([r.status, j])))",
        json!([]),
    );
    assert_eq!(held[0], 403, "{held}");
    assert_eq!(held[1]["reauth"], true, "{held}");
    assert!(!env.pane_text("alice", "main").contains("answered-y"));

    // The question card's button: the page shows the passkey, then answers.
    b.click("button.option[data-key=\"y\"]");
    env.wait_pane("alice", "main", "answered-y");
    let pane = env.pane_text("alice", "main");
    assert_eq!(pane.matches("answered-y").count(), 1, "{pane}");
}

/// A daemon with passkeys on (`agent`, `passkeys` keys, `users`), a
/// browser with a virtual authenticator where alice signed in with a token
/// and added a passkey; dropped browser first.
struct Added {
    b: Browser,
    _driver: Driver,
    _d: crate::common::Daemon,
    env: Env,
    base: String,
    token: String,
}

fn added(agent: &str, passkeys: &str, users: &str) -> Added {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Passkeys need a host name: the page is opened as localhost.
    let base = format!("http://localhost:{port}");
    let mut env = Env::new(&format!(
        "{agent}[web]\nlisten = \"127.0.0.1:{port}\"\n\
         [web.passkeys]\nrp_id = \"localhost\"\norigin = \"{base}\"\n{passkeys}{users}"
    ));
    let token = env.token("alice", "user");
    let d = env.serve();
    let driver = Driver::start();
    let b = driver.browser();
    b.virtual_authenticator();
    // Signed in with the token, alice adds a passkey.
    b.go(&format!("{base}/"));
    b.type_into("#token", &token);
    b.click("#login-submit");
    b.click("#passkey-add");
    wait_for(20, "the passkey added", || {
        let said = b.text(".dash .error");
        said.contains("Passkey").then_some(said)
    });
    Added {
        b,
        _driver: driver,
        _d: d,
        env,
        base,
        token,
    }
}
