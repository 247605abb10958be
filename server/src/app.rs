//! The HTTP surface: [`app`] builds the whole router so tests can call it without a socket.

use actiscope_protocol::{EpochMetrics, RunSummary, ServerInfo};
use axum::Json;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures_util::StreamExt;

use crate::answers::AnswerError;
use crate::figures::{self, FigureQuery};
use crate::guard::guard;
use crate::hub::{Hub, HubError};
use crate::lenses;
use crate::query_params::{MapperQuery, NmfQuery, SimilarityQuery};
use crate::resume::ResumeError;
use crate::state::AppState;
use crate::stored;
use crate::ws::serve_session;

/// Builds the router: the JSON API under `/api`, the websocket at `/ws`, and the frontend.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/health", get(health))
        .route("/api/runs", get(list_runs).post(start_run))
        .route("/api/runs/{run_id}", get(get_run).delete(delete_run))
        .route("/api/imports", post(start_import))
        .route("/api/runs/{run_id}/stop", post(stop_run))
        .route("/api/runs/{run_id}/resume", post(resume_run))
        .route("/api/runs/{run_id}/epochs", get(get_epochs))
        .route("/api/runs/{run_id}/epochs/{epoch}", get(get_snapshot))
        .route("/api/runs/{run_id}/epochs/{epoch}/mapper", get(get_mapper))
        .route("/api/runs/{run_id}/epochs/{epoch}/nmf", get(get_nmf))
        .route("/api/runs/{run_id}/epochs/{epoch}/nmf/rmse", get(get_rmse))
        .route(
            "/api/runs/{run_id}/epochs/{epoch}/spectra",
            get(get_spectra),
        )
        .route("/api/runs/{run_id}/epochs/{epoch}/flows", get(get_flows))
        .route(
            "/api/runs/{run_id}/epochs/{epoch}/probe.csv",
            get(get_probe_csv),
        )
        .route("/api/runs/{run_id}/images", get(get_images))
        .route("/api/runs/{run_id}/similarity", get(get_similarity_epochs))
        .route(
            "/api/runs/{run_id}/epochs/{epoch}/similarity",
            get(get_similarity_layers),
        )
        .route("/api/runs/{run_a}/compare/{run_b}", get(get_compare))
        .route("/api/runs/{run_id}/figures/{file}", get(get_figure))
        .route("/api", any(unknown_api_path))
        .route("/api/", any(unknown_api_path))
        .route("/api/{*rest}", any(unknown_api_path))
        .route("/ws", get(websocket))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    state
        .frontend()
        .serve(api)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Paths under `/api` that name no route: a JSON 404, never the dashboard's page.
async fn unknown_api_path(uri: axum::http::Uri) -> ApiError {
    api_error(
        StatusCode::NOT_FOUND,
        format!("there is no API route {}", uri.path()),
    )
}

async fn health(State(state): State<AppState>) -> Json<ServerInfo> {
    Json(state.info().await)
}

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON error body with a status code.
type ApiError = (StatusCode, Json<serde_json::Value>);

fn api_error(status: StatusCode, message: impl Into<String>) -> ApiError {
    (status, Json(serde_json::json!({ "error": message.into() })))
}

fn internal(err: impl std::fmt::Display) -> ApiError {
    api_error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
}

async fn list_runs(State(state): State<AppState>) -> Result<Json<Vec<RunSummary>>, ApiError> {
    state
        .hub()
        .blocking(Hub::runs)
        .await
        .map(Json)
        .map_err(internal)
}

/// `POST /api/runs` with a JSON body of the same keys as `actiscope train --config`
/// (`hidden` as `"40,40"` or `[40, 40]`): starts the run, or queues it when the server is busy.
async fn start_run(
    State(state): State<AppState>,
    Json(request): Json<actiscope_train::RunRequest>,
) -> Result<(StatusCode, Json<RunSummary>), ApiError> {
    let config = request
        .to_config()
        .map_err(|e| api_error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let run_id = state.hub().start_run(config).await.map_err(start_error)?;
    created(&state, run_id).await
}

/// Why a run (trained or imported) could not start: bad input is 422, a full queue 429.
fn start_error(err: HubError) -> ApiError {
    match err {
        HubError::Train(_) | HubError::Import(_) => {
            api_error(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
        }
        HubError::QueueFull(_) | HubError::TooManyImports(_) => {
            api_error(StatusCode::TOO_MANY_REQUESTS, err.to_string())
        }
        HubError::Resume(ResumeError::Unknown(_)) => {
            api_error(StatusCode::NOT_FOUND, err.to_string())
        }
        HubError::Resume(ResumeError::Refused(_)) => {
            api_error(StatusCode::CONFLICT, err.to_string())
        }
        HubError::Resume(ResumeError::Train(_)) => {
            api_error(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
        }
        other => internal(other),
    }
}

/// 201 with the summary of the run just started.
async fn created(
    state: &AppState,
    run_id: i64,
) -> Result<(StatusCode, Json<RunSummary>), ApiError> {
    let summary = state
        .hub()
        .blocking(move |hub| hub.run(run_id))
        .await
        .map_err(internal)?
        .ok_or_else(|| internal("the new run vanished"))?;
    Ok((StatusCode::CREATED, Json(summary)))
}

/// `POST /api/runs/{id}/resume`: a stopped or interrupted run goes on from its newest
/// checkpoint (201 with the run; 404 unknown, 409 completed, diverged, training or without a
/// checkpoint, 429 when the queue is full).
async fn resume_run(
    State(state): State<AppState>,
    Path(run_id): Path<i64>,
) -> Result<(StatusCode, Json<RunSummary>), ApiError> {
    let run_id = state.hub().resume_run(run_id).await.map_err(start_error)?;
    // Lens answers of the epochs it drops and trains again are stale.
    state.answers().forget_run(run_id);
    created(&state, run_id).await
}

/// The body of `POST /api/imports`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    /// The run directory, on the server's machine.
    dir: std::path::PathBuf,
    /// Keep importing epochs as the job writes them.
    #[serde(default)]
    follow: bool,
}

/// `POST /api/imports` with `{"dir": "...", "follow": true}`: imports a run directory written
/// by another framework, following the job when asked (the dashboard's New-run form).
async fn start_import(
    State(state): State<AppState>,
    Json(request): Json<ImportRequest>,
) -> Result<(StatusCode, Json<RunSummary>), ApiError> {
    let run_id = state
        .hub()
        .start_import(request.dir, request.follow)
        .await
        .map_err(start_error)?;
    created(&state, run_id).await
}

async fn stop_run(
    State(state): State<AppState>,
    Path(run_id): Path<i64>,
) -> Result<Json<RunSummary>, ApiError> {
    let summary = get_run(State(state.clone()), Path(run_id)).await?;
    if state.hub().stop_run(run_id) {
        Ok(summary)
    } else {
        Err(api_error(
            StatusCode::CONFLICT,
            format!("run {run_id} is not training (status {})", summary.status),
        ))
    }
}

async fn delete_run(
    State(state): State<AppState>,
    Path(run_id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    match state
        .hub()
        .blocking(move |hub| hub.delete_run(run_id))
        .await
    {
        Ok(true) => {
            state.answers().forget_run(run_id);
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(false) => Err(api_error(
            StatusCode::NOT_FOUND,
            format!("there is no run {run_id}"),
        )),
        Err(err @ HubError::Busy(_)) => Err(api_error(StatusCode::CONFLICT, err.to_string())),
        Err(err) => Err(internal(err)),
    }
}

async fn get_run(
    State(state): State<AppState>,
    Path(run_id): Path<i64>,
) -> Result<Json<RunSummary>, ApiError> {
    state
        .hub()
        .blocking(move |hub| hub.run(run_id))
        .await
        .map_err(internal)?
        .map(Json)
        .ok_or_else(|| api_error(StatusCode::NOT_FOUND, format!("there is no run {run_id}")))
}

async fn get_epochs(
    State(state): State<AppState>,
    Path(run_id): Path<i64>,
) -> Result<Json<Vec<EpochMetrics>>, ApiError> {
    figures::metrics(state.hub(), run_id)
        .await
        .map(Json)
        .map_err(answer_error)
}

async fn get_snapshot(
    State(state): State<AppState>,
    Path((run_id, epoch)): Path<(i64, u32)>,
) -> Result<Response, ApiError> {
    json_answer(stored::snapshot_json(
        state.hub().clone(),
        state.answers(),
        run_id,
        epoch,
    ))
    .await
}

fn answer_error(err: AnswerError) -> ApiError {
    match err {
        AnswerError::Pending {
            done,
            needed,
            message,
        } => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "pending": true,
                "done": done,
                "needed": needed,
                "message": message,
            })),
        ),
        AnswerError::NotFound(message) => api_error(StatusCode::NOT_FOUND, message),
        AnswerError::BadRequest(message) => api_error(StatusCode::BAD_REQUEST, message),
        AnswerError::Conflict(message) => api_error(StatusCode::CONFLICT, message),
        other => internal(other),
    }
}

/// A JSON answer as a response, or its error as a 4xx/5xx.
async fn json_answer(
    answer: impl Future<Output = Result<bytes::Bytes, AnswerError>>,
) -> Result<Response, ApiError> {
    let bytes = answer.await.map_err(answer_error)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response())
}

fn bad_query(message: String) -> ApiError {
    api_error(StatusCode::BAD_REQUEST, message)
}

async fn get_mapper(
    State(state): State<AppState>,
    Path((run_id, epoch)): Path<(i64, u32)>,
    Query(query): Query<MapperQuery>,
) -> Result<Response, ApiError> {
    let params = query.params().map_err(bad_query)?;
    json_answer(lenses::mapper_json(
        state.hub().clone(),
        state.answers(),
        run_id,
        epoch,
        params,
    ))
    .await
}

async fn get_nmf(
    State(state): State<AppState>,
    Path((run_id, epoch)): Path<(i64, u32)>,
    Query(query): Query<NmfQuery>,
) -> Result<Response, ApiError> {
    let params = query.params().map_err(bad_query)?;
    json_answer(lenses::nmf_json(
        state.hub().clone(),
        state.answers(),
        run_id,
        epoch,
        params,
    ))
    .await
}

async fn get_rmse(
    State(state): State<AppState>,
    Path((run_id, epoch)): Path<(i64, u32)>,
    Query(query): Query<NmfQuery>,
) -> Result<Response, ApiError> {
    let params = query.params().map_err(bad_query)?;
    let ranks = query.ranks().map_err(bad_query)?;
    json_answer(lenses::rmse_json(
        state.hub().clone(),
        state.answers(),
        run_id,
        epoch,
        params,
        ranks,
    ))
    .await
}

async fn get_spectra(
    State(state): State<AppState>,
    Path((run_id, epoch)): Path<(i64, u32)>,
) -> Result<Response, ApiError> {
    json_answer(lenses::spectra_json(
        state.hub().clone(),
        state.answers(),
        run_id,
        epoch,
    ))
    .await
}

async fn get_images(
    State(state): State<AppState>,
    Path(run_id): Path<i64>,
) -> Result<Response, ApiError> {
    json_answer(stored::images_json(
        state.hub().clone(),
        state.answers(),
        run_id,
    ))
    .await
}

/// One epoch's probe instances as CSV: position in the probe set, index in the source set,
/// true label, prediction and loss.
async fn get_probe_csv(
    State(state): State<AppState>,
    Path((run_id, epoch)): Path<(i64, u32)>,
) -> Result<Response, ApiError> {
    let csv = stored::probe_csv(state.hub().clone(), state.answers(), run_id, epoch)
        .await
        .map_err(answer_error)?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"probe.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

/// Query of `GET …/flows`: hidden layers (0-based) spanned by the flows, the set (`probe`,
/// the default, or `train`) and the `binning` (`even`, the default, or `paper`).
#[derive(Debug, serde::Deserialize)]
struct FlowsQuery {
    from: u32,
    to: u32,
    set: Option<String>,
    binning: Option<String>,
}

async fn get_flows(
    State(state): State<AppState>,
    Path((run_id, epoch)): Path<(i64, u32)>,
    Query(query): Query<FlowsQuery>,
) -> Result<Response, ApiError> {
    let set = lenses::flows::FlowSet::parse(query.set.as_deref().unwrap_or("probe"))
        .map_err(bad_query)?;
    let binning = lenses::flows::parse_binning(query.binning.as_deref().unwrap_or("even"))
        .map_err(bad_query)?;
    json_answer(lenses::flows_json(
        state.hub().clone(),
        state.answers(),
        run_id,
        epoch,
        (query.from, query.to),
        set,
        binning,
    ))
    .await
}

async fn get_similarity_epochs(
    State(state): State<AppState>,
    Path(run_id): Path<i64>,
    Query(query): Query<SimilarityQuery>,
) -> Result<Response, ApiError> {
    let method = query.method().map_err(bad_query)?;
    let reference = query.reference().map_err(bad_query)?;
    json_answer(lenses::similarity::epochs_json(
        state.hub().clone(),
        state.answers(),
        run_id,
        method,
        reference,
    ))
    .await
}

async fn get_similarity_layers(
    State(state): State<AppState>,
    Path((run_id, epoch)): Path<(i64, u32)>,
    Query(query): Query<SimilarityQuery>,
) -> Result<Response, ApiError> {
    let method = query.method().map_err(bad_query)?;
    json_answer(lenses::similarity::layers_json(
        state.hub().clone(),
        state.answers(),
        run_id,
        epoch,
        method,
    ))
    .await
}

async fn get_compare(
    State(state): State<AppState>,
    Path((run_a, run_b)): Path<(i64, i64)>,
    Query(query): Query<SimilarityQuery>,
) -> Result<Response, ApiError> {
    let method = query.method().map_err(bad_query)?;
    let epoch = |given: Option<u32>, run_id: i64| match given {
        Some(epoch) => Ok(epoch),
        None => lenses::similarity::latest_epoch(state.hub(), run_id).map_err(answer_error),
    };
    let a = (run_a, epoch(query.epoch_a, run_a)?);
    let b = (run_b, epoch(query.epoch_b, run_b)?);
    json_answer(lenses::similarity::compare_json(
        state.hub().clone(),
        state.answers(),
        a,
        b,
        method,
    ))
    .await
}

/// `GET /api/runs/{id}/figures/{name}.{svg|png}?epoch=…&…`: one of the papers' figures, drawn
/// from the same answers as the JSON routes (see [`figures`]).
async fn get_figure(
    State(state): State<AppState>,
    Path((run_id, file)): Path<(i64, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (name, format) =
        figures::parse_file(&file).map_err(|m| api_error(StatusCode::NOT_FOUND, m))?;
    let query = FigureQuery::parse(query.as_deref().unwrap_or("")).map_err(bad_query)?;
    let cache = state.answers();
    let drawn = figures::draw(state.hub(), &cache, run_id, name, &query)
        .await
        .map_err(answer_error)?;
    let file_name = figures::file_name(run_id, &drawn, format);
    let bytes = figures::render(&cache, drawn.figure, drawn.size, format)
        .await
        .map_err(answer_error)?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                format.content_type().to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{file_name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Largest frame a client may send: its messages (`Subscribe`, `Ping`) take a few bytes.
pub const MAX_CLIENT_FRAME_BYTES: usize = 4 * 1024;

async fn websocket(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let upgrade = upgrade
        .max_message_size(MAX_CLIENT_FRAME_BYTES)
        .max_frame_size(MAX_CLIENT_FRAME_BYTES);
    let Some(permit) = state.socket_permit() else {
        let limit = state.max_sockets();
        return upgrade
            .on_upgrade(move |mut socket: WebSocket| async move {
                let close = CloseFrame {
                    // 1013: try again later.
                    code: 1013,
                    reason: format!(
                        "the server has {limit} websockets open, its limit (--max-sockets); \
                         try again later"
                    )
                    .into(),
                };
                let _ = socket.send(Message::Close(Some(close))).await;
            })
            .into_response();
    };
    upgrade
        .on_upgrade(move |socket: WebSocket| async move {
            let _permit = permit;
            let (sink, stream) = socket.split();
            let hub = state.hub().clone();
            let info = state.info().await;
            let end = serve_session(sink, stream, hub, info).await;
            tracing::debug!(?end, "websocket session ended");
        })
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    fn state(dist: Option<std::path::PathBuf>) -> AppState {
        AppState::new(
            actiscope_store::Store::open_in_memory().expect("store"),
            dist,
        )
    }

    async fn get_path(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn health_reports_version_and_protocol() {
        let (status, body) = get_path(app(state(None)), "/api/health").await;
        assert_eq!(status, StatusCode::OK);
        let info: ServerInfo = serde_json::from_str(&body).expect("json");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.protocol_version, actiscope_protocol::PROTOCOL_VERSION);
        assert_eq!(info.run_count, 0);
    }

    #[tokio::test]
    async fn serves_the_frontend_and_falls_back_to_index() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("index.html"), "<p>the app</p>").expect("write");
        std::fs::write(dir.path().join("app.js"), "let x = 1;").expect("write");
        let dist = Some(dir.path().to_path_buf());
        assert_eq!(
            get_path(app(state(dist.clone())), "/").await.1,
            "<p>the app</p>"
        );
        assert_eq!(
            get_path(app(state(dist.clone())), "/app.js").await.1,
            "let x = 1;"
        );
        // Client-side routes get the app, never a 404.
        assert_eq!(
            get_path(app(state(dist.clone())), "/runs/3").await.1,
            "<p>the app</p>"
        );
    }

    #[tokio::test]
    async fn path_traversal_never_leaves_dist() {
        let root = tempfile::tempdir().expect("dir");
        let dist = root.path().join("dist");
        std::fs::create_dir(&dist).expect("mkdir");
        std::fs::write(dist.join("index.html"), "index").expect("write");
        std::fs::write(root.path().join("secret.txt"), "secret").expect("write");
        for path in ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt"] {
            let (_, body) = get_path(app(state(Some(dist.clone()))), path).await;
            assert!(!body.contains("secret"), "{path} leaked {body}");
        }
    }

    #[tokio::test]
    async fn without_a_build_the_root_explains_itself() {
        let (status, body) = get_path(app(state(None)), "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("cargo xtask run"));
    }

    async fn send(app: Router, request: Request<Body>) -> (StatusCode, String) {
        let response = app.oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn post_json(path: &str, body: &str) -> Request<Body> {
        Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request")
    }

    #[tokio::test]
    async fn bad_run_requests_get_clear_4xx() {
        let cases = [
            ("{not json", StatusCode::BAD_REQUEST),
            ("{\"epochs\": 0}", StatusCode::UNPROCESSABLE_ENTITY),
            ("{\"lr\": -1}", StatusCode::UNPROCESSABLE_ENTITY),
            (
                "{\"dataset\": \"imagenet\"}",
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            ("{\"colour\": \"red\"}", StatusCode::UNPROCESSABLE_ENTITY),
        ];
        for (body, expected) in cases {
            let (status, text) = send(app(state(None)), post_json("/api/runs", body)).await;
            assert_eq!(status, expected, "{body}: {text}");
        }
        let huge = format!("{{\"dataset\": \"{}\"}}", "x".repeat(MAX_BODY_BYTES + 1));
        let (status, _) = send(app(state(None)), post_json("/api/runs", &huge)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, _) = send(
            app(state(None)),
            Request::post("/api/runs/7/stop")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = send(
            app(state(None)),
            Request::delete("/api/runs/7")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_token_guards_the_api_but_not_the_page() {
        let guarded = AppState::with_options(
            actiscope_store::Store::open_in_memory().expect("store"),
            None,
            crate::state::ServerOptions {
                token: Some("s3cret".to_owned()),
                ..Default::default()
            },
        );
        let (status, _) = get_path(app(guarded.clone()), "/api/health").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = get_path(app(guarded.clone()), "/api/health?token=wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = get_path(app(guarded.clone()), "/api/health?token=s3cret").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = get_path(app(guarded.clone()), "/api/health?token=s3cre").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a prefix is not the token"
        );
        let (status, _) = get_path(app(guarded.clone()), "/api/health?token=s3cret%20").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "nor is a longer one");
        let (status, _) = get_path(app(guarded.clone()), "/api/health?token=s%33cret").await;
        assert_eq!(status, StatusCode::OK, "the query value is percent-decoded");
        let request = Request::get("/api/runs")
            .header("authorization", "Bearer s3cret")
            .body(Body::empty())
            .expect("request");
        assert_eq!(send(app(guarded.clone()), request).await.0, StatusCode::OK);
        let (status, _) = get_path(app(guarded), "/").await;
        assert_eq!(status, StatusCode::OK);
    }

    fn guarded_state() -> AppState {
        AppState::with_options(
            actiscope_store::Store::open_in_memory().expect("store"),
            None,
            crate::state::ServerOptions {
                token: Some("s3 cret/=".to_owned()),
                ..Default::default()
            },
        )
    }

    #[tokio::test]
    async fn a_page_load_with_the_token_sets_a_cookie_that_then_opens_the_api() {
        let state = guarded_state();
        let response = app(state.clone())
            .oneshot(
                Request::get("/?token=s3%20cret%2F%3D")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response
            .headers()
            .get(axum::http::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .expect("a cookie")
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let pair = cookie.split(';').next().expect("name=value").to_owned();
        let with_cookie = Request::get("/api/runs")
            .header("cookie", format!("theme=dark; {pair}"))
            .body(Body::empty())
            .expect("request");
        assert_eq!(
            send(app(state.clone()), with_cookie).await.0,
            StatusCode::OK
        );
        let wrong_cookie = Request::get("/api/runs")
            .header("cookie", "actiscope_token=s3")
            .body(Body::empty())
            .expect("request");
        assert_eq!(
            send(app(state.clone()), wrong_cookie).await.0,
            StatusCode::UNAUTHORIZED
        );
        // A wrong token in the page URL sets nothing.
        let response = app(state)
            .oneshot(
                Request::get("/?token=nope")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert!(
            response
                .headers()
                .get(axum::http::header::SET_COOKIE)
                .is_none()
        );
    }

    #[tokio::test]
    async fn foreign_hosts_and_origins_are_refused_everywhere() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("index.html"), "<p>the app</p>").expect("write");
        let with_dist = || app(state(Some(dir.path().to_path_buf())));
        let request = |path: &str, host: &str, origin: Option<&str>| {
            let mut builder = Request::get(path).header("host", host);
            if let Some(origin) = origin {
                builder = builder.header("origin", origin);
            }
            builder.body(Body::empty()).expect("request")
        };
        for path in ["/", "/api/runs", "/api/health", "/ws"] {
            // DNS rebinding: a foreign name that resolves to 127.0.0.1.
            let (status, body) = send(with_dist(), request(path, "evil.example:8080", None)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
            // A foreign page calling the loopback server.
            let (status, body) = send(
                with_dist(),
                request(path, "127.0.0.1:8080", Some("http://evil.example")),
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
            let (status, _) =
                send(with_dist(), request(path, "127.0.0.1:8080", Some("null"))).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: a null origin");
        }
        // The dashboard's own page, from its own origin, passes.
        for (path, expected) in [("/", StatusCode::OK), ("/api/runs", StatusCode::OK)] {
            let (status, body) = send(
                with_dist(),
                request(path, "localhost:8080", Some("http://localhost:8080")),
            )
            .await;
            assert_eq!(status, expected, "{path}: {body}");
        }
    }

    #[tokio::test]
    async fn unknown_api_paths_are_json_404s_even_with_a_dashboard() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("index.html"), "<p>the app</p>").expect("write");
        for path in [
            "/api",
            "/api/",
            "/api/nope",
            "/api/runs/1/nope",
            "/api/healthz",
        ] {
            let (status, body) = get_path(app(state(Some(dir.path().to_path_buf()))), path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
            assert!(body.contains("\"error\""), "{path}: {body}");
            assert!(!body.contains("the app"), "{path}: {body}");
        }
        // The dashboard's own routes still get the app.
        let (status, body) = get_path(app(state(Some(dir.path().to_path_buf()))), "/runs/3").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "<p>the app</p>"));
    }

    #[tokio::test]
    async fn unknown_runs_and_absurd_epochs_are_404s_with_a_reason() {
        for path in [
            "/api/runs/42",
            "/api/runs/42/epochs",
            "/api/runs/42/epochs/3",
            "/api/runs/1/epochs/4294967295",
        ] {
            let (status, body) = get_path(app(state(None)), path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
            assert!(body.contains("error"), "{path}: {body}");
        }
        let (status, _) = get_path(app(state(None)), "/api/runs/not-a-number").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, body) = get_path(app(state(None)), "/api/runs").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "[]"));
    }
}
