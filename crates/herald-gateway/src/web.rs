//! The browser files served from `web_dir`: an allowlist, never the whole directory.
//!
//! `web/` also holds `node_modules/`, `package.json`, tests and end-to-end logs; a browser
//! needs only `/` (`index.html`), `/herald.js`, `/herald.d.ts`, `/lib/**` and
//! `/dashboard/**`. Inside the two folders, a path with a hidden segment (`.git`, `.env`) is
//! 404 too; `..` never leaves the folder (`ServeDir` refuses it).

use std::path::Path;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::services::{ServeDir, ServeFile};

/// The routes serving the browser client and the dashboard out of `dir`.
pub fn router(dir: &Path) -> Router {
    Router::new()
        .route_service("/", ServeFile::new(dir.join("index.html")))
        .route_service("/herald.js", ServeFile::new(dir.join("herald.js")))
        .route_service("/herald.d.ts", ServeFile::new(dir.join("herald.d.ts")))
        .nest_service("/lib", ServeDir::new(dir.join("lib")))
        .nest_service("/dashboard", ServeDir::new(dir.join("dashboard")))
        .layer(middleware::from_fn(refuse_hidden))
}

/// 404 for any path with a segment that starts with `.` (dotfiles, `..`), also when the dot
/// is percent-encoded.
async fn refuse_hidden(req: Request, next: Next) -> Response {
    let hidden =
        |s: &str| s.starts_with('.') || s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("%2e"));
    if req.uri().path().split('/').any(hidden) {
        return StatusCode::NOT_FOUND.into_response();
    }
    next.run(req).await
}
