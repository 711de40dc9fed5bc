//! `custodia app serve`: the wallet app's UI in an ordinary browser, over a loopback JSON bridge.
//!
//! The bridge is the Tauri commands' other transport: `POST /bridge/{command}` with the arguments as a
//! JSON object, answered with the command's JSON or `{ code, message }`. Because any web page the
//! patient visits could try to talk to a port on their machine, every bridge request must carry:
//! the Host this server was started on (so a DNS-rebinding page is refused), an Origin of this
//! server, JSON, and the per-run token from the printed address (compared in constant time). The
//! token travels in the address's fragment, which browsers never send to a server or in a Referer.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use custodia_app::{App, AppError, ErrorCode};
use subtle::ConstantTimeEq;

/// The largest bridge request: an image to scan, base64, with room to spare.
const MAX_BRIDGE_BODY: usize = 12 * 1024 * 1024;
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'none'";

struct Bridge {
    app: Arc<App>,
    token: String,
    /// `127.0.0.1:PORT` and `localhost:PORT`: the only `Host` a plain-HTTP bridge answers, so a web page
    /// that rebinds its own name to 127.0.0.1 cannot reach it.
    hosts: [String; 2],
    /// Over TLS, a rebound name fails the certificate check, so any `Host` the certificate was accepted for
    /// will do, and the `Origin` must be that same `https://` host.
    tls: bool,
    ui: PathBuf,
}

/// Where the built UI is: `--ui`, else `ui/dist` under the working directory or above the binary
/// (`target/debug/custodia` in a checkout), else `share/custodia/ui` beside an installed binary's `bin/`.
pub fn find_ui(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = given {
        if dir.join("index.html").is_file() {
            return Ok(dir.to_owned());
        }
        bail!("{} has no index.html: build the UI with `npm run build` in ui/", dir.display());
    }
    let mut candidates = vec![PathBuf::from("ui/dist")];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(|a| a.join("ui/dist")));
        // Installed from the Debian package: /usr/bin/custodia and /usr/share/custodia/ui.
        candidates.extend(exe.parent().and_then(Path::parent).map(|prefix| prefix.join("share/custodia/ui")));
    }
    candidates
        .into_iter()
        .find(|c| c.join("index.html").is_file())
        .context("cannot find the built UI (ui/dist): run `cargo xtask run`, or build it with `npm run build` in ui/ and pass --ui")
}

pub fn serve(
    wallet: &Path,
    listen: SocketAddr,
    ledger: Option<String>,
    ui: Option<&Path>,
    tls: Option<custodia_net::TlsFiles>,
) -> Result<ExitCode> {
    if !listen.ip().is_loopback() && tls.is_none() {
        bail!(
            "refusing to listen on {listen} without TLS: the wallet's bridge is for this machine only (use \
             127.0.0.1), or give --tls-cert and --tls-key"
        );
    }
    let tls = tls.as_ref().map(custodia_net::ServerTls::http1_only).transpose()?;
    let ui = find_ui(ui)?;
    let mut token = [0u8; 32];
    getrandom::fill(&mut token).map_err(|e| anyhow::anyhow!("no randomness for the bridge token: {e}"))?;
    let token = data_encoding::HEXLOWER.encode(&token);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = custodia_net::Listener::bind(listen, tls).await?;
        let addr = listener.local_addr()?;
        let scheme = listener.scheme();
        let app = App::new(wallet.to_owned(), ledger);
        app.spawn_idle_locker();
        let bridge = Arc::new(Bridge {
            app,
            token: token.clone(),
            hosts: [format!("127.0.0.1:{}", addr.port()), format!("localhost:{}", addr.port())],
            tls: scheme == "https",
            ui,
        });
        let router = Router::new()
            .route("/bridge/{command}", post(bridge_call))
            .route("/", get(static_file))
            .route("/{*path}", get(static_file))
            .layer(DefaultBodyLimit::max(MAX_BRIDGE_BODY))
            .with_state(bridge);
        // The first line is for scripts and tests that start on port 0. A closed stdout (the script
        // stopped reading) must not stop the app, so write errors are ignored.
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // Over TLS the address must be a name the certificate carries; localhost is the usual one here.
            let host = match (scheme, addr.ip().is_loopback()) {
                ("http", _) => format!("127.0.0.1:{}", addr.port()),
                (_, true) => format!("localhost:{}", addr.port()),
                (_, false) => addr.to_string(),
            };
            let _ = writeln!(out, "open {scheme}://{host}/#token={token}");
            let _ = writeln!(out, "wallet: {}", wallet.display());
            let _ = out.flush();
        }
        axum::serve(listener, router).with_graceful_shutdown(crate::shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    eprintln!("custodia: app stopped; the wallet is locked");
    Ok(ExitCode::SUCCESS)
}

fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadInput => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::WrongPassphrase => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Locked => StatusCode::LOCKED,
        ErrorCode::NoWallet | ErrorCode::NotFound | ErrorCode::UnknownCommand => StatusCode::NOT_FOUND,
        ErrorCode::WalletExists | ErrorCode::Busy | ErrorCode::Conflict | ErrorCode::NotEnrolled => {
            StatusCode::CONFLICT
        }
        ErrorCode::LedgerUnreachable | ErrorCode::LedgerRefused | ErrorCode::VerificationFailed => {
            StatusCode::BAD_GATEWAY
        }
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_response(e: AppError) -> Response {
    (status_of(e.code), no_store(), axum::Json(e)).into_response()
}

fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ]
}

fn refused(message: &str) -> Response {
    error_response(AppError::new(ErrorCode::Unauthorized, message))
}

impl Bridge {
    fn host(headers: &HeaderMap) -> Option<&str> {
        headers.get(header::HOST).and_then(|h| h.to_str().ok())
    }

    fn host_ok(&self, headers: &HeaderMap) -> bool {
        Self::host(headers).is_some_and(|h| self.tls || self.hosts.iter().any(|ok| ok == h))
    }

    fn origin_ok(&self, headers: &HeaderMap) -> bool {
        let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
        if self.tls {
            return origin.and_then(|o| o.strip_prefix("https://")).is_some_and(|o| Self::host(headers) == Some(o));
        }
        origin.and_then(|o| o.strip_prefix("http://")).is_some_and(|o| self.hosts.iter().any(|ok| ok == o))
    }

    fn token_ok(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        given.len() == self.token.len() && bool::from(given.as_bytes().ct_eq(self.token.as_bytes()))
    }
}

async fn bridge_call(
    State(bridge): State<Arc<Bridge>>,
    UrlPath(command): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !bridge.host_ok(&headers) {
        return refused("this bridge answers only at the address it printed");
    }
    if !bridge.origin_ok(&headers) {
        return refused("requests must come from the wallet's own page");
    }
    if !bridge.token_ok(&headers) {
        return refused("missing or wrong bridge token: open the address `custodia app serve` printed");
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !json {
        return error_response(AppError::new(ErrorCode::BadInput, "the bridge takes application/json"));
    }
    let args: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return error_response(AppError::new(ErrorCode::BadInput, format!("the body is not JSON: {e}"))),
        }
    };
    let app = bridge.app.clone();
    match tokio::task::spawn_blocking(move || app.dispatch(&command, args)).await {
        Ok(Ok(value)) => (StatusCode::OK, no_store(), axum::Json(value)).into_response(),
        Ok(Err(e)) => error_response(e),
        Err(_) => error_response(AppError::new(ErrorCode::Internal, "the command failed unexpectedly")),
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "webmanifest") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// A file of the built UI. Only plain path components are followed, so nothing outside the UI folder
/// is ever served.
async fn static_file(State(bridge): State<Arc<Bridge>>, path: Option<UrlPath<String>>, headers: HeaderMap) -> Response {
    if !bridge.host_ok(&headers) {
        return (StatusCode::MISDIRECTED_REQUEST, "wrong host").into_response();
    }
    let relative = path.map(|UrlPath(p)| p).unwrap_or_default();
    let relative = if relative.is_empty() { "index.html".to_owned() } else { relative };
    let rel = Path::new(&relative);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let file = bridge.ui.join(rel);
    // UI files are small; a blocking read is cheaper than a thread hop.
    match std::fs::read(&file) {
        Ok(bytes) => {
            let mut response = (StatusCode::OK, bytes).into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&file)));
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
            h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(_) => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
