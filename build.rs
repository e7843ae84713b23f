//! Builds the browser page from `web/` (xterm.js and addons from the npm
//! registry, bundled by esbuild) into OUT_DIR, where `src/web/assets.rs`
//! embeds it. Nothing generated is committed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    for path in [
        "web/package.json",
        "web/package-lock.json",
        "web/index.html",
        "web/icon.svg",
        "web/manifest.webmanifest",
        "web/src",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let web = &root.join("web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("web");
    std::fs::create_dir_all(&out).expect("create OUT_DIR/web");

    // `npm ci` when the packages are missing or the lock file changed since.
    let installed = web.join("node_modules/.package-lock.json");
    let stale = match (
        modified(&installed),
        modified(&web.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    };
    if stale {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(web),
            "npm ci (needs Node.js, npm and the npm registry)",
        );
    }
    run(
        Command::new(web.join("node_modules/.bin/esbuild"))
            .arg("src/app.ts")
            .args([
                "--bundle",
                "--minify",
                "--target=es2020",
                // The terminal's font files, inlined into app.css.
                "--loader:.woff2=dataurl",
                "--loader:.woff=dataurl",
                "--log-level=warning",
            ])
            .arg(format!("--outfile={}", out.join("app.js").display()))
            .current_dir(web),
        "esbuild",
    );
    for file in ["index.html", "icon.svg", "manifest.webmanifest"] {
        std::fs::copy(web.join(file), out.join(file)).expect("copy the page's files");
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("building the web page: cannot run {what}: {e}"));
    assert!(
        status.success(),
        "building the web page: {what} failed ({status})"
    );
}
