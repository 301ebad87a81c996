//! `/console`: the web console, a page and one script compiled into the binary. The script
//! signs in with `/auth/login` and then reads and writes the same endpoints the API's users do
//! (`/admin/plugins`, `/api/tasks`, `/api/schedules`, `/api/users`) with the session cookie, so it
//! has exactly the access the signed-in user has, and every write passes the same cross-origin
//! check. It needs the `admin` permission; anyone else is told so after signing in.

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;

use super::AppState;
use super::assets::Asset;

const PAGE: Asset = Asset::Html(include_str!("console/index.html"));
const SCRIPT: Asset = Asset::Script(include_str!("console/app.js"));
const STYLE: Asset = Asset::Style(include_str!("console/app.css"));
const ICON: Asset = Asset::Svg(include_str!("console/icon.svg"));

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { PAGE }))
        .route("/console/", get(|| async { Redirect::permanent("/console") }))
        .route("/console/app.js", get(|| async { SCRIPT }))
        .route("/console/app.css", get(|| async { STYLE }))
        .route("/console/icon.svg", get(|| async { ICON }))
}
