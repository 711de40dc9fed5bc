//! What an operator's tooling asks a ledger: is it alive (`/healthz`), can it take appends (`/readyz`), and the
//! counts that matter (`/metrics`, Prometheus text).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use custodia_net::metrics::{CONTENT_TYPE, Counter, Exposition, LabelledCounter};
use serde_json::json;

use crate::Shared;
use crate::problem::ApiError;

/// Entries appended to the log since the process started.
pub static APPENDED: Counter = Counter::new();
/// Problem documents answered, by their code (`bad-signature`, `stale`, `rate-limited`...).
pub static REFUSALS: LabelledCounter = LabelledCounter::new();

/// The process answers.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The sequencer runs and the store answers: appends can be taken.
pub async fn readyz(State(shared): State<Arc<Shared>>) -> Result<Json<serde_json::Value>, ApiError> {
    if shared.jobs.is_closed() {
        return Err(ApiError::unavailable("the sequencer has stopped"));
    }
    let store = shared.store.clone();
    let tree = tokio::task::spawn_blocking(move || store.tree())
        .await
        .map_err(|_| ApiError::unavailable("the store check did not finish"))?
        .map_err(|e| ApiError::unavailable(format!("the store does not answer: {e}")))?;
    Ok(Json(json!({ "status": "ready", "size": tree.size })))
}

pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut page = Exposition::new();
    page.counter("custodia_ledger_appends_total", "Entries appended to the log by this process.", APPENDED.get())
        .labelled(
            "custodia_ledger_refusals_total",
            "Requests refused, by the problem code answered.",
            "reason",
            &REFUSALS,
            &["bad-signature", "not-enrolled", "rate-limited", "replayed", "stale"],
        )
        .gauge("custodia_ledger_tree_size", "Entries in the log at the latest checkpoint.", shared.latest().size as f64)
        .gauge(
            "custodia_ledger_sequencer_queue",
            "Append requests waiting for the sequencer.",
            (shared.jobs.max_capacity() - shared.jobs.capacity()) as f64,
        )
        .gauge("custodia_ledger_live_streams", "Open live event streams.", shared.notices.receiver_count() as f64);
    if let Some(witnessing) = &shared.witnessing {
        let info = witnessing.info(shared.latest().size);
        page.gauge(
            "custodia_ledger_cosigned_size",
            "Entries in the checkpoint the witnesses' quorum cosigned (-1: none yet).",
            info.cosigned_size.map_or(-1.0, |s| s as f64),
        )
        .gauge(
            "custodia_ledger_witness_lag_entries",
            "Entries not yet covered by a cosigned checkpoint.",
            info.lag_entries as f64,
        )
        .gauge(
            "custodia_ledger_witness_lag_seconds",
            "Seconds since a cosigned checkpoint last covered every entry.",
            info.lag_seconds as f64,
        )
        .counter(
            "custodia_ledger_witness_alarms_total",
            "Refusals of this log's checkpoints by witnesses (403, 404, 422, bad cosignatures).",
            crate::witnessing::ALARMS.get(),
        );
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], page.finish()).into_response()
}
