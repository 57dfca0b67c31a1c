//! The web dashboard: one self-contained page (HTML, JS and CSS compiled in) served at `/` and
//! `/ui/*` without a token. The page itself holds no data: it asks the user for an API token and
//! reads everything from `/v1` and `/metrics` with it, through relative URLs only (no CDN, no
//! external fonts), so it works on a server with no internet and behind a path-prefix proxy.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;

/// The page; it loads `ui/style.css` and `ui/app.js` relative to itself.
pub const INDEX_HTML: &str = include_str!("dashboard/index.html");
/// The page's script: token handling, polling, tables and the inline-SVG charts.
pub const APP_JS: &str = include_str!("dashboard/app.js");
/// The page's style sheet.
pub const STYLE_CSS: &str = include_str!("dashboard/style.css");
/// The page's icon (a browser asks for one; without it every load logs a 404).
pub const ICON_SVG: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><circle cx='8' cy='8' r='7' fill='#2f6fed'/><path d='M4 9a3 3 0 0 1 3-3 3.5 3.5 0 0 1 6 2 2 2 0 0 1 0 4H5a2 2 0 0 1-1-3z' fill='#fff'/></svg>";

/// What the browser may load: only this server (scripts from files, no `eval`), so a page that
/// somehow referenced another host would be refused by the browser too.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `/` and `/ui/{file}`: open routes, merged into the router beside `/healthz`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/ui/{*file}", get(asset))
}

async fn index() -> Response {
    page(INDEX_HTML, "text/html; charset=utf-8")
}

async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => page(APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => page(STYLE_CSS, "text/css; charset=utf-8"),
        "icon.svg" => page(ICON_SVG, "image/svg+xml"),
        other => ApiError::NotFound(format!("no dashboard file `{other}`: expected app.js, style.css or icon.svg"))
            .into_response(),
    }
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}
