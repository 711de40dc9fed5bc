//! A C2SP tlog-witness (c2sp.org/tlog-witness): it cosigns a log's checkpoint only when the checkpoint
//! is signed by the log's key and a consistency proof shows it extends the last one it cosigned, so a
//! log that shows two histories to two parties is caught by any client that asks for its cosignature.
//!
//! `POST /add-checkpoint` answers exactly as the specification says (200 with cosignature lines, 400,
//! 403, 404, 409 with `text/x.tlog.size`, 422); `GET /<sha256(origin) hex>/checkpoint` serves the
//! latest cosigned checkpoint of a log (the monitoring API). Cosignatures are tlog-cosignature v1
//! (Ed25519, type 0x04, timestamped). Any conforming log can be witnessed, not only Custodia's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use custodia_log::witness::{self, AddCheckpoint, MAX_ADD_CHECKPOINT_BYTES, Refusal, SIZE_CONTENT_TYPE};
use custodia_net::metrics::{CONTENT_TYPE, Counter, Exposition};
use sha2::{Digest, Sha256};

pub mod state;

pub use state::{LogState, StateError, WitnessDir};

const COMPONENT: &str = "custodia-witness";

/// Cosignatures given since the process started.
pub static COSIGNED: Counter = Counter::new();
/// Requests refused with 409 (a client behind or ahead) and with 403/422 (a forged or inconsistent
/// checkpoint: possible log misbehaviour).
pub static CONFLICTS: Counter = Counter::new();
pub static ALARMS: Counter = Counter::new();
pub static MALFORMED: Counter = Counter::new();

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Tls(#[from] custodia_net::ServerTlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// The outcome of one `add-checkpoint`: cosignature lines, or a refusal.
pub type Outcome = Result<String, Refusal>;

fn now_seconds() -> u64 {
    // A clock before 1970 would make a zero timestamp, which the specification forbids; 1 is the floor.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs().max(1))
}

/// Handles one `add-checkpoint` body: parse, look the log up, verify, compare-and-swap the new
/// (size, root) into the database, and only then return the cosignature. Blocking (SQLite).
pub fn add_checkpoint(dir: &WitnessDir, body: &[u8]) -> Result<Outcome, StateError> {
    let request = match AddCheckpoint::parse(body) {
        Ok(request) => request,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let origin = request.checkpoint.origin.clone();
    // A lost race re-reads the state once; a second loss is answered 409 with the newest size.
    for _ in 0..2 {
        let Some(log) = dir.log(&origin)? else {
            return Ok(Err(Refusal::UnknownLog(origin)));
        };
        if let Err(refusal) = witness::check(&request, &log.keys, Some((log.size, log.root))) {
            return Ok(Err(refusal));
        }
        let checkpoint = &request.checkpoint;
        let line = dir.cosigner().cosign(checkpoint, now_seconds());
        if checkpoint.size == log.size {
            // Already recorded (a request repeated after a lost answer): nothing to move.
            return Ok(Ok(line));
        }
        let mut note = request.signed.clone();
        note.signatures.retain(|s| log.keys.iter().any(|k| k.name() == s.name && k.key_id() == s.key_id));
        let recorded = format!("{note}{line}");
        if dir.advance(&origin, (log.size, &log.root), (checkpoint.size, &checkpoint.root), &recorded)? {
            return Ok(Ok(line));
        }
    }
    let size = dir.log(&origin)?.map_or(0, |log| log.size);
    Ok(Err(Refusal::Conflict(size)))
}

fn refusal_response(refusal: &Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
    match refusal {
        Refusal::Conflict(size) => {
            CONFLICTS.add(1);
            (status, [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)], format!("{size}\n")).into_response()
        }
        other => {
            match other {
                Refusal::Forbidden(_) | Refusal::Inconsistent(_) => {
                    ALARMS.add(1);
                    custodia_net::log::warn(COMPONENT, format_args!("refused a checkpoint: {other}"));
                }
                _ => MALFORMED.add(1),
            }
            (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{other}\n")).into_response()
        }
    }
}

async fn add_checkpoint_route(State(dir): State<Arc<WitnessDir>>, body: Bytes) -> Response {
    match tokio::task::spawn_blocking(move || add_checkpoint(&dir, &body)).await {
        Ok(Ok(Ok(lines))) => {
            COSIGNED.add(1);
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], lines).into_response()
        }
        Ok(Ok(Err(refusal))) => refusal_response(&refusal),
        Ok(Err(e)) => {
            custodia_net::log::error(COMPONENT, format_args!("add-checkpoint failed: {e}"));
            (StatusCode::SERVICE_UNAVAILABLE, "the witness's state could not be read or written\n").into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the request did not finish\n").into_response(),
    }
}

/// The lowercase hex SHA-256 of a log's origin: its path in the monitoring API.
pub fn origin_hash(origin: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(origin.as_bytes()))
}

async fn checkpoint_route(State(dir): State<Arc<WitnessDir>>, Path(hash): Path<String>) -> Response {
    let found = tokio::task::spawn_blocking(move || {
        dir.logs().map(|logs| logs.into_iter().find(|l| origin_hash(&l.origin) == hash).and_then(|l| l.note))
    })
    .await;
    match found {
        Ok(Ok(Some(note))) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response(),
        Ok(Ok(None)) => {
            (StatusCode::NOT_FOUND, "this witness has cosigned no checkpoint of that log\n").into_response()
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, "the witness's state could not be read\n").into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics() -> Response {
    let mut page = Exposition::new();
    page.counter("custodia_witness_cosigned_total", "Checkpoints cosigned.", COSIGNED.get())
        .counter(
            "custodia_witness_conflicts_total",
            "Requests answered 409 (the client's old size was not ours).",
            CONFLICTS.get(),
        )
        .counter(
            "custodia_witness_alarms_total",
            "Checkpoints refused as forged or inconsistent with what was cosigned (403, 422).",
            ALARMS.get(),
        )
        .counter(
            "custodia_witness_malformed_total",
            "Requests refused as malformed or for unknown logs.",
            MALFORMED.get(),
        );
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], page.finish()).into_response()
}

pub fn router(dir: Arc<WitnessDir>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint_route))
        .route("/{origin_hash}/checkpoint", get(checkpoint_route))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        // Larger bodies are refused before they are read (413).
        .layer(DefaultBodyLimit::max(MAX_ADD_CHECKPOINT_BYTES))
        .with_state(dir)
}

/// A witness serving on a socket until [`RunningWitness::shutdown`] or drop.
#[derive(Debug)]
pub struct RunningWitness {
    pub addr: SocketAddr,
    /// `https://ADDR` or `http://ADDR`: the submission prefix.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), std::io::Error>>>,
}

impl RunningWitness {
    pub async fn shutdown(mut self) -> Result<(), WitnessError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.map_err(|e| WitnessError::Serve(std::io::Error::other(e)))?.map_err(WitnessError::Serve)?;
        }
        Ok(())
    }
}

impl Drop for RunningWitness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts serving `dir` on `listen` (port 0 picks one), terminating TLS with `tls` when given.
pub async fn start(
    dir: Arc<WitnessDir>,
    listen: SocketAddr,
    tls: Option<custodia_net::ServerTls>,
) -> Result<RunningWitness, WitnessError> {
    let listener = custodia_net::Listener::bind(listen, tls).await?;
    let addr = listener.local_addr().map_err(|source| WitnessError::Listen { addr: listen, source })?;
    let url = format!("{}://{addr}", listener.scheme());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(dir);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningWitness { addr, url, stop: Some(stop), server: Some(server) })
}

/// Serves until `stop` completes; `ready` is told the URL once listening.
pub fn serve_blocking(
    dir: WitnessDir,
    listen: SocketAddr,
    tls: Option<custodia_net::ServerTls>,
    ready: impl FnOnce(&str),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), WitnessError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(WitnessError::Serve)?;
    runtime.block_on(async {
        let running = start(Arc::new(dir), listen, tls).await?;
        ready(&running.url);
        stop.await;
        running.shutdown().await
    })
}
