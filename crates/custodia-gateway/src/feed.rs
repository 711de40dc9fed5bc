//! The ledger's grant-change feed, followed: revocations and redactions pushed as the ledger sequences
//! them (`GET /v1/grant-changes`, server-sent events), so the gateway keeps every grant's state locally and
//! asks the ledger about a grant only the first time it sees it. While the feed is fresh (an event within
//! [`FRESH_FOR`]) a known state is trusted until the feed changes it; when the feed is behind or cut, the
//! gateway falls back to asking again after [`crate::STATUS_TTL`]. A change is acted on at once (refusing is
//! the safe side) and, when it comes with its inclusion proof, the proof is checked too; a change that
//! does not check out is logged as an alarm.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use custodia_core::entry::EntryKind;
use custodia_core::ledger_api::{FeedHead, GrantChange};
use custodia_core::{reqsig, sse};

use crate::Shared;
use crate::guard::LedgerState;

/// How long the feed counts as fresh after its last event; the ledger sends one at least every second.
pub const FRESH_FOR: Duration = Duration::from_secs(3);
/// No byte for this long (the ledger's keep-alive comes every 15 s) and the connection is given up.
const SILENCE: Duration = Duration::from_secs(20);
/// The largest event taken.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// The feed's state, as handlers and `/metrics` see it.
#[derive(Debug, Default)]
pub struct FeedState {
    /// Milliseconds after `epoch` until which the feed is fresh; 0 when never.
    fresh_until_ms: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
    pub changes: AtomicU64,
    pub reconnects: AtomicU64,
    pub alarms: AtomicU64,
}

impl FeedState {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        let until = self.now_ms().saturating_add(u64::try_from(FRESH_FOR.as_millis()).unwrap_or(u64::MAX));
        self.fresh_until_ms.store(until, Ordering::Relaxed);
    }

    fn stale(&self) {
        self.fresh_until_ms.store(0, Ordering::Relaxed);
    }

    /// Whether every change the ledger sequenced up to a moment ago has been applied.
    pub fn is_fresh(&self) -> bool {
        self.now_ms() < self.fresh_until_ms.load(Ordering::Relaxed)
    }
}

/// Follows the feed until the gateway stops: reconnects after a cut (resuming from the last event), with a
/// back-off from 250 ms to 5 s.
pub async fn follow(shared: Arc<Shared>) {
    let http = match custodia_net::Trust::global().map_err(|e| e.to_string()).and_then(|t| {
        t.async_client().connect_timeout(Duration::from_secs(5)).build().map_err(|e| custodia_net::client::explain(&e))
    }) {
        Ok(http) => http,
        Err(e) => {
            custodia_net::log::error("custodia-gateway", format_args!("cannot follow the ledger's grant changes: {e}"));
            return;
        }
    };
    let mut last: Option<u64> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        let started = Instant::now();
        if let Err(e) = follow_once(&shared, &http, &mut last).await {
            custodia_net::log::warn(
                "custodia-gateway",
                format_args!(
                    "the ledger's grant-change feed was cut ({e}); asking the ledger per grant until it is back"
                ),
            );
        }
        shared.feed.stale();
        shared.feed.reconnects.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(250);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection: reads events until the ledger closes it or falls silent.
async fn follow_once(shared: &Arc<Shared>, http: &reqwest::Client, last: &mut Option<u64>) -> Result<(), String> {
    let target = "/v1/grant-changes";
    let signature = reqsig::sign(&shared.identity, "GET", target, b"", crate::now());
    let mut request = http
        .get(format!("{}{target}", shared.ledger.url().trim_end_matches('/')))
        .header(reqsig::HEADER, signature)
        .header("accept", "text/event-stream");
    if let Some(last) = last {
        request = request.header("last-event-id", last.to_string());
    }
    let mut response = request.send().await.map_err(|e| custodia_net::client::explain(&e))?;
    if !response.status().is_success() {
        return Err(format!("the ledger answered {}", response.status()));
    }
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::time::timeout(SILENCE, response.chunk())
            .await
            .map_err(|_| "the ledger fell silent".to_owned())?
            .map_err(|e| custodia_net::client::explain(&e))?;
        let Some(chunk) = chunk else { return Ok(()) };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = sse::event_end(&buffer) {
            let block: Vec<u8> = buffer.drain(..end).collect();
            apply(shared, &String::from_utf8_lossy(&block), last).await;
        }
        if buffer.len() > MAX_EVENT_BYTES {
            return Err("an event over 1 MiB".into());
        }
    }
}

async fn apply(shared: &Arc<Shared>, block: &str, last: &mut Option<u64>) {
    let event = sse::Event::parse(block);
    match event.event.as_str() {
        "head" => {
            if serde_json::from_str::<FeedHead>(&event.data).is_err() {
                return;
            }
        }
        "change" => {
            let Ok(change) = serde_json::from_str::<GrantChange>(&event.data) else {
                alarm(shared, "the ledger sent a grant change that does not parse");
                return;
            };
            let at = Instant::now();
            match (change.kind, change.grant_id) {
                (EntryKind::Revocation, Some(id)) => shared.caches.keep_state(id, LedgerState::Revoked, at),
                (EntryKind::Redaction, None) => shared.caches.forget_tag(&change.tag),
                _ => alarm(shared, &format!("entry {} is not a grant change", change.index)),
            }
            shared.feed.changes.fetch_add(1, Ordering::Relaxed);
            if change.proof.is_some() {
                let checking = shared.clone();
                let checked = tokio::task::spawn_blocking(move || {
                    let mut ledger = checking.verifying.lock().map_err(|_| "a lock is poisoned".to_owned())?;
                    ledger.check_grant_change(&change).map_err(|e| format!("entry {}: {e}", change.index))
                })
                .await;
                match checked {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => alarm(shared, &format!("a grant change's proof failed: {e}")),
                    Err(e) => alarm(shared, &e.to_string()),
                }
            }
        }
        _ => return,
    }
    if let Some(id) = event.id.as_deref().and_then(|i| i.parse().ok()) {
        *last = Some(id);
    }
    shared.feed.touch();
}

fn alarm(shared: &Shared, what: &str) {
    shared.feed.alarms.fetch_add(1, Ordering::Relaxed);
    custodia_net::log::error("custodia-gateway", format_args!("{what}"));
}
