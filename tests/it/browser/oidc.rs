//! Single sign-on (issue 17): a real OpenID Connect provider on loopback
//! (the certified `oidc-provider` from npm, its development login
//! screens), a real browser: "Sign in with your organisation" on the
//! page, the provider's login as alice, back on the dashboard as alice.
//! Someone the provider knows and tmuxd does not is refused; a callback
//! with a state this browser did not start, or whose code was issued for
//! another PKCE challenge, signs no one in. (Bad ID tokens: the unit
//! tests of `oidc::jwt`.)

use std::process::{Child, Command, Stdio};

use super::*;

const PROVIDER: &str = "/opt/tmuxd-test/oidc-provider-9.13.3";
const SCRIPT: &str = include_str!("../common/oidc-provider.mjs");

/// The provider's node process, killed on drop, and its directory (kept
/// while it runs).
struct Provider(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn provider(port: u16, redirect: &str, secret: &str) -> Provider {
    crate::common::require("node");
    assert!(
        std::path::Path::new(PROVIDER)
            .join("node_modules/oidc-provider")
            .exists(),
        "oidc-provider is not installed in {PROVIDER}: run scripts/test-deps.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("provider.mjs"), SCRIPT).unwrap();
    std::os::unix::fs::symlink(
        format!("{PROVIDER}/node_modules"),
        dir.path().join("node_modules"),
    )
    .unwrap();
    let child = Command::new("node")
        .arg(dir.path().join("provider.mjs"))
        .args([&port.to_string(), redirect, secret])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node");
    let p = Provider(child, dir);
    wait_for(20, "the OIDC provider listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    p
}

/// Through the provider's development screens: log in as `who`, consent.
fn sign_in_at_provider(b: &Browser, who: &str) {
    b.type_into("input[name=login]", who);
    b.type_into("input[name=password]", "anything");
    b.click("button.login-submit");
    // Consent, the first time this browser signs this client in.
    wait_for(20, "the consent screen", || {
        let on_provider = b.script("return location.port").as_str().map(String::from);
        (b.script("return !!document.querySelector('button.login-submit')") == true
            || on_provider.is_some_and(|p| !p.is_empty() && !b.visible("input[name=login]")))
        .then_some(())
    });
    if b.script("return !!document.querySelector('button.login-submit')") == true {
        b.click("button.login-submit");
    }
}

#[test]
fn a_browser_signs_in_at_a_real_oidc_provider_as_the_right_user() {
    let tmuxd_port = free_port();
    let idp_port = free_port();
    let base = format!("http://127.0.0.1:{tmuxd_port}");
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let redirect = format!("{base}/auth/oidc/callback");
    let secret = format!("client-secret-{}", marker());
    let _idp = provider(idp_port, &redirect, &secret);
    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\"]\n[web]\nlisten = \"127.0.0.1:{tmuxd_port}\"\n\
         [web.oidc]\nissuer = \"{issuer}\"\nclient_id = \"tmuxd\"\nclient_secret_file = \"{{dir}}/oidc-secret\"\n\
         redirect_url = \"{redirect}\"\n\
         [[users]]\nname = \"alice\"\n[[users]]\nname = \"bob\"\n"
    ));
    std::fs::write(env.path().join("oidc-secret"), &secret).unwrap();
    let d = env.serve();
    let driver = Driver::start();

    // The page offers single sign-on; the provider signs alice in.
    let b = driver.browser();
    b.go(&format!("{base}/"));
    wait_for(20, "the sign-on link", || b.visible("#sso").then_some(()));
    b.click("#sso a");
    wait_for(20, "the provider's login screen", || {
        b.visible("input[name=login]").then_some(())
    });
    sign_in_at_provider(&b, "alice");
    wait_for(30, "alice's dashboard", || {
        b.visible("[data-session=\"alice/main\"]").then_some(())
    });
    let me = b.script_async(
        "const done = arguments[arguments.length - 1]; fetch('/api/me').then(r => r.json()).then(done)",
        json!([]),
    );
    assert_eq!(me["user"], "alice", "{me}");
    assert!(
        !b.visible("[data-session=\"bob/main\"]"),
        "bob's session shown to alice"
    );
    // Logging out ends it.
    let status = b.script_async(
        "const done = arguments[arguments.length - 1]; fetch('/api/logout', {method: 'POST'}).then(() => fetch('/api/me')).then(r => done(r.status))",
        json!([]),
    );
    assert_eq!(status, 401);
    drop(b);

    // Someone the provider knows and tmuxd does not: refused, not made.
    let b = driver.browser();
    b.go(&format!("{base}/auth/oidc/login"));
    wait_for(20, "the provider's login screen", || {
        b.visible("input[name=login]").then_some(())
    });
    sign_in_at_provider(&b, "mallory");
    wait_for(30, "the refusal", || {
        b.text("h1").contains("Not a tmuxd user").then_some(())
    });
    let me = b.script_async(
        "const done = arguments[arguments.length - 1]; fetch('/api/me').then(r => done(r.status))",
        json!([]),
    );
    assert_eq!(me, 401);
    drop(b);

    // A callback this browser did not start: refused.
    let (status, body) = {
        let mut r = http()
            .get(&format!("{base}/auth/oidc/callback?code=x&state=forged"))
            .call()
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("was not started here"), "{body}");

    // A code issued for another PKCE challenge: tmuxd's verifier does not
    // match it, the provider refuses the exchange, nobody is signed in.
    let b = driver.browser();
    let mut r = http()
        .get(&format!("{base}/auth/oidc/login"))
        .config()
        .max_redirects(0)
        .build()
        .call()
        .unwrap();
    let location = r
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let state_cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let _ = r.body_mut().read_to_string();
    let (name, value) = state_cookie.split_once('=').unwrap();
    // The browser gets tmuxd's state cookie, then the provider's URL with
    // the challenge replaced.
    b.go(&format!("{base}/healthz"));
    b.add_cookie(name, value, "/auth/oidc");
    let challenge = location
        .split('&')
        .find_map(|kv| kv.strip_prefix("code_challenge="))
        .unwrap();
    let other = location.replace(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    b.go(&other);
    wait_for(20, "the provider's login screen", || {
        b.visible("input[name=login]").then_some(())
    });
    sign_in_at_provider(&b, "alice");
    wait_for(30, "the refusal", || {
        b.text("h1").contains("Not signed in").then_some(())
    });
    assert!(
        b.text("body")
            .contains("the provider did not sign you in: invalid_grant"),
        "{}",
        b.text("body")
    );
    assert!(
        !d.log().contains(&secret),
        "the client secret reached the log"
    );
}
