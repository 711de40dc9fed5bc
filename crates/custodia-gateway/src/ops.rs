//! What an operator's tooling asks a gateway: is it alive (`/healthz`), is it serving (`/readyz`), and the
//! counts that matter (`/metrics`, Prometheus text): reads allowed and refused, refusals by reason, and the
//! access events still waiting in the outbox for the ledger.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use custodia_net::metrics::{CONTENT_TYPE, Counter, Exposition, LabelledCounter};
use serde_json::json;

use crate::Shared;

/// Requests for records answered with records: an atomic add on the read path, no lock.
pub static READS_ALLOWED: Counter = Counter::new();
/// Requests for records refused.
pub static READS_REFUSED: Counter = Counter::new();
/// Grant states asked of the ledger (a grant's first read, or any read while the feed is behind).
pub static STATE_LOOKUPS: Counter = Counter::new();
/// Refused requests, by the OperationOutcome code answered (`security`, `forbidden`, `throttled`...).
pub static REFUSALS: LabelledCounter = LabelledCounter::new();

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The gateway started only once the ledger knew it as a gateway; it stays ready while its outbox takes events.
pub async fn readyz(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ready",
        "outbox_depth": shared.outbox.pending(),
        "patients_linked": shared.links.len(),
        "feed_fresh": shared.feed.is_fresh(),
    }))
}

pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut page = Exposition::new();
    page.counters(
        "custodia_gateway_reads_total",
        "Requests for records, by outcome.",
        "outcome",
        &[("allowed", &READS_ALLOWED), ("refused", &READS_REFUSED)],
    )
    .labelled(
        "custodia_gateway_refusals_total",
        "Refused requests, by the OperationOutcome issue code.",
        "reason",
        &REFUSALS,
        &["forbidden", "security"],
    )
    .gauge(
        "custodia_gateway_outbox_depth",
        "Access events recorded but not yet acknowledged by the ledger.",
        shared.outbox.pending() as f64,
    )
    .gauge("custodia_gateway_patients_linked", "Patients linked to records here.", shared.links.len() as f64)
    .gauge(
        "custodia_gateway_feed_fresh",
        "1 while the ledger's grant-change feed is current, 0 while the gateway asks per grant instead.",
        if shared.feed.is_fresh() { 1.0 } else { 0.0 },
    )
    .gauge(
        "custodia_gateway_feed_changes",
        "Revocations and redactions applied from the ledger's feed.",
        shared.feed.changes.load(Ordering::Relaxed) as f64,
    )
    .gauge(
        "custodia_gateway_feed_alarms",
        "Feed changes whose proof or form did not check out.",
        shared.feed.alarms.load(Ordering::Relaxed) as f64,
    )
    .gauge("custodia_gateway_grant_state_lookups", "Grant states asked of the ledger.", STATE_LOOKUPS.get() as f64);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], page.finish()).into_response()
}
