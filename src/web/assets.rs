//! The browser page, built from `web/` by build.rs and embedded here.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!(concat!(env!("OUT_DIR"), "/web/index.html"));
const SCRIPT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/app.js"));
const STYLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/app.css"));
const ICON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/icon.svg"));
const MANIFEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/manifest.webmanifest"));

fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub async fn index() -> Response {
    asset(INDEX.as_bytes(), "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

pub async fn icon() -> Response {
    asset(ICON, "image/svg+xml")
}

/// The web app manifest: the page installs as an app on a phone.
pub async fn manifest() -> Response {
    asset(MANIFEST, "application/manifest+json")
}
