//! The dashboard page in-process (`tower::ServiceExt::oneshot`): served without a token, holding no
//! data, referencing only relative URLs, and calling only routes the API has.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use cumulo_api::dashboard::{APP_JS, ICON_SVG, INDEX_HTML, STYLE_CSS};
use cumulo_api::{AppState, Config, Fleet, Metrics, ROUTES, router};
use cumulo_store::Store;
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    content_type: String,
    csp: String,
    text: String,
}

async fn app() -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        cumulo_store_sqlite::SqliteStore::open_path(dir.path().join("cumulo.db")).await.unwrap();
    let state = AppState::new(store, Arc::new(Fleet::default()), Arc::new(Metrics::default()), Config::default());
    (router(state), dir)
}

async fn get(app: &Router, uri: &str) -> Answer {
    let response = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let header_text =
        |name| response.headers().get(name).map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_string());
    let content_type = header_text(header::CONTENT_TYPE).unwrap_or_default();
    let csp = header_text(header::CONTENT_SECURITY_POLICY).unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Answer { status, content_type, csp, text: String::from_utf8(bytes.to_vec()).unwrap() }
}

#[tokio::test]
async fn index_and_its_files_answer_without_a_token_with_their_types() {
    let (app, _dir) = app().await;
    let index = get(&app, "/").await;
    assert_eq!(index.status, StatusCode::OK, "{}", index.text);
    assert!(index.content_type.starts_with("text/html"), "{}", index.content_type);
    assert_eq!(index.text, INDEX_HTML);
    assert!(index.csp.contains("connect-src 'self'") && index.csp.contains("script-src 'self'"), "{}", index.csp);
    for (uri, content_type, body) in [
        ("/ui/app.js", "text/javascript", APP_JS),
        ("/ui/style.css", "text/css", STYLE_CSS),
        ("/ui/icon.svg", "image/svg+xml", ICON_SVG),
    ] {
        let answer = get(&app, uri).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text);
        assert!(answer.content_type.starts_with(content_type), "{uri}: {}", answer.content_type);
        assert_eq!(answer.text, body, "{uri}");
    }
    // The page asks for its own files by the relative names the router serves.
    assert!(INDEX_HTML.contains(r#"src="ui/app.js""#) && INDEX_HTML.contains(r#"href="ui/style.css""#));
}

#[tokio::test]
async fn unknown_dashboard_file_is_a_404_naming_it_and_the_api_still_needs_a_token() {
    let (app, _dir) = app().await;
    let missing = get(&app, "/ui/secrets.json").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.text.contains("no dashboard file `secrets.json`: expected app.js, style.css or icon.svg"),
        "{}",
        missing.text
    );
    let jobs = get(&app, "/v1/jobs").await;
    assert_eq!(jobs.status, StatusCode::UNAUTHORIZED, "{}", jobs.text);
    let metrics = get(&app, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::UNAUTHORIZED, "{}", metrics.text);
}

/// Every quoted value of `attr="..."` in `html`.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

#[test]
fn page_references_only_relative_urls() {
    for (name, text) in [("index.html", INDEX_HTML), ("app.js", APP_JS), ("style.css", STYLE_CSS)] {
        for scheme in ["http://", "https://", "ws://", "wss://", "url(", "@import", "//fonts", "//cdn"] {
            assert!(!text.contains(scheme), "{name} references `{scheme}`: the page must need nothing but this server");
        }
    }
    // In-page links (`#/jobs`) are views of this page; everything else is a file it loads.
    let links: Vec<&str> = attribute_values(INDEX_HTML, "src")
        .into_iter()
        .chain(attribute_values(INDEX_HTML, "href"))
        .filter(|l| !l.starts_with("#/"))
        .collect();
    assert_eq!(links.len(), 3, "the script, the style sheet and the icon: {links:?}");
    for link in links {
        assert!(!link.starts_with('/') && !link.contains(':'), "`{link}` is not relative to the page");
    }
}

/// The paths in `api("...")` calls of the script, without their query.
fn api_paths(js: &str) -> Vec<String> {
    js.match_indices("api(\"")
        .map(|(at, _)| {
            let rest = &js[at + 5..];
            let path = &rest[..rest.find('"').unwrap()];
            path.split('?').next().unwrap().to_string()
        })
        .collect()
}

#[test]
fn script_calls_only_routes_the_api_has_relative_to_the_page() {
    let paths = api_paths(APP_JS);
    assert!(paths.len() >= 6, "{paths:?}");
    for path in paths {
        assert!(!path.starts_with('/'), "`{path}` must be relative so a path-prefix proxy works");
        let absolute = format!("/{path}");
        let routed = ROUTES.iter().any(|(method, route, _)| {
            *method == "get"
                && (*route == absolute || (route.ends_with("{id}") && absolute.starts_with(&route[..route.len() - 4])))
        });
        assert!(routed, "the page calls `{absolute}`, which is not a GET route of the API");
    }
}
