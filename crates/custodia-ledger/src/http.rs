//! The ledger's HTTP interface: C2SP tlog-tiles for auditors, a JSON API for clients, server-sent events
//! for live updates, and the mailbox.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use custodia_core::SigningPublicKey;
use custodia_core::entry::{Content, EntryKind, LedgerEntry, Role, Tag, canonical_envelope};
use custodia_core::grant::GrantId;
use custodia_core::ledger_api::{
    AppendRequest, AppendResponse, ChangeProof, ConsistencyProof, FeedHead, GrantChange, GrantEntry, GrantProof,
    GrantState, GrantStatus, InclusionProof, LedgerInfo, Mail, MailList, MailPosted, MemberInfo, PatientInfo, Receipt,
    RecoveryInfo, TagEntries, TagEntry,
};
use custodia_core::reqsig::{RequestSignature, RequestSignatureError};
use custodia_core::time::Timestamp;
use custodia_log::Hash;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::Shared;
use crate::admit::admit_all;
use crate::problem::ApiError;
use crate::sequencer::{AppendJob, SignedCheckpoint};
use crate::store::{MailMessage, Store, StoreHashes, StoredEntry};

const OPENAPI: &str = include_str!("../openapi.json");
use custodia_log::tiles::TILE_WIDTH;

pub fn router(shared: Arc<Shared>) -> Router {
    let append_limit = shared.limits.max_entries_per_request * (shared.limits.max_entry_bytes + 64) + 1024;
    let mail_limit = shared.limits.max_mail_bytes;
    Router::new()
        .route("/healthz", get(crate::ops::healthz))
        .route("/readyz", get(crate::ops::readyz))
        .route("/metrics", get(crate::ops::metrics))
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile))
        .route("/openapi.json", get(openapi))
        .route("/v1/info", get(info))
        .route("/v1/entries", post(append).layer(DefaultBodyLimit::max(append_limit)))
        .route("/v1/proof/inclusion", get(inclusion))
        .route("/v1/proof/consistency", get(consistency))
        .route("/v1/tags/{tag}/entries", get(tag_entries))
        .route("/v1/tags/{tag}/events", get(tag_events))
        .route("/v1/grant-changes", get(grant_changes))
        .route("/v1/grants/{id}", get(grant_status))
        .route("/v1/grants/{id}/entry", get(grant_entry))
        .route("/v1/grants/{id}/proof", get(grant_proof))
        .route("/v1/members/{key}", get(member))
        .route("/v1/patients/{key}", get(patient))
        .route("/v1/recovery/{key}", get(recovery))
        .route("/v1/mailbox/{key}", post(mail_post).get(mail_list).layer(DefaultBodyLimit::max(mail_limit)))
        .route("/v1/mailbox/{key}/{id}", delete(mail_delete))
        .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "this endpoint has no such method")
        })
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::map_response(problem_documents))
        .with_state(shared)
}

/// Longest rejection text kept as a problem's detail.
const MAX_REJECTION_DETAIL: usize = 1024;

/// Turns every other refusal into an RFC 9457 problem document too: the ones axum's extractors and
/// layers answer by themselves with plain text (a malformed query string or path, a body over its
/// limit). The rejection's own words become the detail.
async fn problem_documents(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_DETAIL).await.unwrap_or_default();
    let detail = match String::from_utf8_lossy(&text).trim() {
        "" => status.canonical_reason().unwrap_or("refused").to_owned(),
        text => text.to_owned(),
    };
    let code = match status {
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        s if s.is_server_error() => "unavailable",
        _ => "malformed",
    };
    let mut problem = ApiError::new(status, code, detail).into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    problem
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs store work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::unavailable(format!("a worker failed: {e}")))?
}

pub(crate) fn now() -> Timestamp {
    let secs = i64::try_from(crate::sequencer::now_ms() / 1000).unwrap_or(i64::MAX);
    // Any clock this runs under is within Timestamp's years 0000 to 9999.
    #[allow(clippy::expect_used)]
    Timestamp::from_unix(secs).expect("the system clock is within the years 0000 to 9999")
}

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

fn hashes(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(Hash::to_base64).collect()
}

fn latest(shared: &Shared) -> Arc<SignedCheckpoint> {
    shared.latest()
}

fn parse_key(text: &str) -> ApiResult<SigningPublicKey> {
    text.parse().map_err(|e| ApiError::malformed(format!("{text:?} is not a signing key: {e}")))
}

fn parse_tag(text: &str) -> ApiResult<Tag> {
    text.parse().map_err(ApiError::malformed)
}

/// The checkpoint clients sync to; with a witness policy, before the quorum has cosigned any: 503.
fn published(shared: &Shared) -> ApiResult<Arc<SignedCheckpoint>> {
    shared.published().ok_or_else(|| {
        ApiError::unavailable("no checkpoint has the witnesses' quorum of cosignatures yet; see /v1/info")
    })
}

async fn checkpoint(State(shared): State<Arc<Shared>>) -> ApiResult<Response> {
    let note = published(&shared)?.note.clone();
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], note)
        .into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn info(State(shared): State<Arc<Shared>>) -> Json<LedgerInfo> {
    Json(LedgerInfo {
        origin: shared.config.origin.clone(),
        verifier_key: shared.verifier.to_vkey(),
        authority: shared.config.authority,
        size: latest(&shared).size,
        limits: shared.limits.clone(),
        witnessing: shared.witnessing.as_ref().map(|w| w.info(latest(&shared).size)),
    })
}

async fn append(State(shared): State<Arc<Shared>>, body: Bytes) -> ApiResult<Json<AppendResponse>> {
    let request: AppendRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::malformed(format!("expected {{\"entries\": [envelope, ...]}}: {e}")))?;
    if request.entries.is_empty() {
        return Err(ApiError::malformed("no entries"));
    }
    let max = shared.limits.max_entries_per_request;
    if request.entries.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-entries",
            format!("at most {max} entries per request; this one has {}", request.entries.len()),
        ));
    }
    let permit = shared.admission.acquire().await.map_err(|_| ApiError::unavailable("the ledger is shutting down"))?;
    let admitting = shared.clone();
    // Admission reads the store (enrollments, grants), so it runs on a blocking thread, never on an async
    // worker: the PostgreSQL client blocks on a runtime of its own.
    let admitted = blocking(move || {
        let now = now();
        let raws: Vec<&[u8]> = request.entries.iter().map(|raw| raw.get().as_bytes()).collect();
        let admitted = admit_all(&admitting, &raws, now)?;
        let mut per_signer: HashMap<SigningPublicKey, u32> = HashMap::new();
        for a in &admitted {
            *per_signer.entry(a.signer).or_default() += 1;
        }
        for (signer, count) in per_signer {
            // Enrolled gateways log every read of a hospital; the network vouched for them, so they are not
            // held to a per-key rate meant for patients' wallets.
            let gateway = admitting.member(&signer)?.is_some_and(|m| m.role == Role::Gateway);
            if !gateway && !admitting.rate.allow(&signer, count) {
                return Err(rate_limited(&signer, admitting.limits.entries_per_key_per_second));
            }
        }
        Ok(admitted)
    })
    .await?;
    drop(permit);
    let (reply, receipt) = tokio::sync::oneshot::channel();
    shared
        .jobs
        .send(AppendJob { entries: admitted, reply })
        .await
        .map_err(|_| ApiError::unavailable("the ledger is shutting down"))?;
    let receipts = receipt.await.map_err(|_| ApiError::unavailable("the sequencer stopped"))??;
    Ok(Json(AppendResponse {
        checkpoint: receipts.checkpoint.note.clone(),
        entries: receipts
            .entries
            .into_iter()
            .map(|(index, leaf, proof)| Receipt { index, leaf: b64(&leaf), inclusion: hashes(&proof) })
            .collect(),
    }))
}

fn rate_limited(key: &SigningPublicKey, rate: u32) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!("{key} has used its allowance ({rate} a second); try again shortly"),
    )
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: u64,
    size: u64,
}

async fn inclusion(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<InclusionQuery>,
) -> ApiResult<Json<InclusionProof>> {
    let size = latest(&shared).size;
    if q.size == 0 || q.size > size || q.index >= q.size {
        return Err(ApiError::bad_range(format!(
            "need index < size <= {size} (the latest checkpoint); got index {} and size {}",
            q.index, q.size
        )));
    }
    blocking(move || {
        let store = shared.store.as_ref();
        let proof = custodia_log::proof::inclusion_proof(q.index, q.size, &StoreHashes(store))
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let leaf = store.read_leaves(q.index, q.index + 1)?;
        Ok(Json(InclusionProof { index: q.index, size: q.size, leaf: b64(&leaf[0]), proof: hashes(&proof) }))
    })
    .await
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    old: u64,
    new: u64,
}

async fn consistency(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyProof>> {
    let size = latest(&shared).size;
    if q.old > q.new || q.new > size {
        return Err(ApiError::bad_range(format!(
            "need old <= new <= {size} (the latest checkpoint); got old {} and new {}",
            q.old, q.new
        )));
    }
    blocking(move || {
        let proof = custodia_log::proof::consistency_proof(q.old, q.new, &StoreHashes(shared.store.as_ref()))
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        Ok(Json(ConsistencyProof { old: q.old, new: q.new, proof: hashes(&proof) }))
    })
    .await
}

/// What a request signature covers, taken whole from the request.
struct SignedParts {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for SignedParts {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self { method: parts.method.clone(), uri: parts.uri.clone(), headers: parts.headers.clone() })
    }
}

/// Checks a signed request and returns its signer.
fn signed_by(shared: &Shared, request: &SignedParts, body: &[u8]) -> ApiResult<SigningPublicKey> {
    let SignedParts { method, uri, headers } = request;
    let unauthorized = |detail: String| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
    let header = headers
        .get(custodia_core::reqsig::HEADER)
        .ok_or_else(|| {
            unauthorized("this endpoint needs a request signed by your key (custodia-signature header)".into())
        })?
        .to_str()
        .map_err(|_| unauthorized("the custodia-signature header is not text".into()))?;
    let signature = RequestSignature::parse(header).map_err(|e| unauthorized(e.to_string()))?;
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    signature.verify(method.as_str(), target, body, now()).map_err(|e| match e {
        RequestSignatureError::Stale { .. } => ApiError::new(StatusCode::UNAUTHORIZED, "stale", e.to_string()),
        RequestSignatureError::BadSignature(_) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "bad-signature", e.to_string())
        }
        RequestSignatureError::Malformed(_) => unauthorized(e.to_string()),
    })?;
    let window = Duration::from_secs(2 * custodia_core::reqsig::MAX_SKEW_SECONDS as u64 + 1);
    if !shared.nonces.first_use(signature.nonce, window) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "replayed", "this signed request was already used"));
    }
    if !shared.rate.allow(&signature.key, 1) {
        return Err(rate_limited(&signature.key, shared.limits.entries_per_key_per_second));
    }
    Ok(signature.key)
}

/// The tag's owner, if `key` is it.
fn require_owner(shared: &Shared, key: &SigningPublicKey, tag: &Tag) -> ApiResult<()> {
    match shared.patient(key)? {
        Some(p) if p.tag == *tag => Ok(()),
        _ => Err(ApiError::forbidden("forbidden", format!("only the patient who owns tag {tag} may read its entries"))),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn tag_entries(
    State(shared): State<Arc<Shared>>,
    Path(tag): Path<String>,
    Query(q): Query<PageQuery>,
    request: SignedParts,
) -> ApiResult<Json<TagEntries>> {
    let tag = parse_tag(&tag)?;
    let max = shared.limits.max_page;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > max {
        return Err(ApiError::bad_range(format!("limit must be 1 to {max}")));
    }
    blocking(move || {
        let key = signed_by(&shared, &request, b"")?;
        require_owner(&shared, &key, &tag)?;
        let checkpoint = published(&shared)?;
        let store = shared.store.as_ref();
        let mut rows = store.entries_by_tag(&tag, q.after, limit + 1)?;
        // Entries newer than the published checkpoint come with the next sync, so every proof is against it.
        rows.retain(|e| e.index < checkpoint.size);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let entries = rows.into_iter().map(|e| tag_entry(store, e, checkpoint.size)).collect::<Result<Vec<_>, _>>()?;
        Ok(Json(TagEntries { checkpoint: checkpoint.note.clone(), entries, more }))
    })
    .await
}

fn envelope_json(e: &StoredEntry) -> Option<Box<RawValue>> {
    match (&e.payload, &e.sig) {
        (Some(payload), Some(sig)) => RawValue::from_string(canonical_envelope(payload, sig)).ok(),
        _ => None,
    }
}

fn tag_entry(store: &dyn Store, e: StoredEntry, size: u64) -> ApiResult<TagEntry> {
    let proof = custodia_log::proof::inclusion_proof(e.index, size, &StoreHashes(store))
        .map_err(|err| ApiError::unavailable(err.to_string()))?;
    Ok(TagEntry {
        index: e.index,
        kind: e.kind,
        leaf: b64(&e.leaf),
        envelope: envelope_json(&e),
        inclusion: hashes(&proof),
    })
}

async fn tag_events(
    State(shared): State<Arc<Shared>>,
    Path(tag): Path<String>,
    request: SignedParts,
) -> ApiResult<Response> {
    let tag = parse_tag(&tag)?;
    let resume = request.headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let checking = shared.clone();
    blocking(move || {
        let key = signed_by(&checking, &request, b"")?;
        require_owner(&checking, &key, &tag)
    })
    .await?;
    // Without Last-Event-ID the stream starts with entries logged from now on.
    let start = match resume {
        Some(index) => Some(index),
        None => {
            let size = latest(&shared).size;
            size.checked_sub(1)
        }
    };
    let notices = shared.notices.subscribe();
    let closing = shared.closing.subscribe();
    let state = (shared, tag, start, (notices, closing), VecDeque::<(u64, &'static str)>::new());
    let stream = futures_util::stream::unfold(
        state,
        |(shared, tag, mut after, (mut notices, mut closing), mut queue)| async move {
            loop {
                if let Some((index, kind)) = queue.pop_front() {
                    let data = format!("{{\"index\":{index},\"kind\":\"{kind}\"}}");
                    let event = Event::default().event("entry").id(index.to_string()).data(data);
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (shared, tag, after, (notices, closing), queue),
                    ));
                }
                let reading = shared.clone();
                let rows = tokio::task::spawn_blocking(move || reading.store.entries_by_tag(&tag, after, 100)).await;
                match rows {
                    Ok(Ok(rows)) if !rows.is_empty() => {
                        after = rows.last().map(|e| e.index);
                        queue.extend(rows.iter().map(|e| (e.index, e.kind.as_str())));
                        continue;
                    }
                    Ok(Ok(_)) => {}
                    _ => return None,
                }
                // Wake on a notice for this tag, or poll once a second for entries other front ends sequenced.
                if !await_notice(&mut notices, &mut closing, |n| n.tag == tag).await {
                    return None;
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

#[derive(Deserialize)]
struct ChangesQuery {
    after: Option<u64>,
}

/// Changes read from the store per query.
const CHANGES_PER_READ: usize = 256;

/// A stored revocation or redaction as the feed sends it, with its proof if `published` covers it.
fn grant_change(
    store: &dyn Store,
    e: StoredEntry,
    published: Option<&SignedCheckpoint>,
) -> ApiResult<Option<GrantChange>> {
    let entry = e.payload.as_deref().and_then(|p| <LedgerEntry as custodia_core::statement::Statement>::decode(p).ok());
    let (tag, grant_id) = match entry.map(|e| e.content) {
        Some(Content::Revocation { tag, grant_id, .. }) => (tag, Some(grant_id)),
        Some(Content::Redaction { tag }) => (tag, None),
        // Revocations and redactions keep their bodies; one that does not decode is skipped, not allowed to
        // stop every gateway's feed.
        _ => {
            custodia_net::log::error(
                "custodia-ledger",
                format_args!(
                    "entry {} is a {} that does not decode; left out of the grant-change feed",
                    e.index,
                    e.kind.as_str()
                ),
            );
            return Ok(None);
        }
    };
    let (index, kind) = (e.index, e.kind);
    let proof = match published {
        Some(p) if index < p.size => {
            Some(ChangeProof { checkpoint: p.note.clone(), entry: tag_entry(store, e, p.size)? })
        }
        _ => None,
    };
    Ok(Some(GrantChange { index, kind, tag, grant_id, proof }))
}

/// Waits for a notice `wanted` picks (or a missed one), or a second, whichever comes first (other front
/// ends append too); false once the ledger is closing.
async fn await_notice(
    notices: &mut tokio::sync::broadcast::Receiver<crate::sequencer::Notice>,
    closing: &mut tokio::sync::watch::Receiver<bool>,
    wanted: impl Fn(&crate::sequencer::Notice) -> bool,
) -> bool {
    let deadline = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return true,
            _ = closing.changed() => return false,
            notice = notices.recv() => match notice {
                Ok(n) if wanted(&n) => return true,
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
            },
        }
    }
}

/// `GET /v1/grant-changes`: the revocations and redactions gateways act on, pushed as the ledger
/// sequences them (see [`GrantChange`]), from `Last-Event-ID` or `?after=`, else from now.
async fn grant_changes(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<ChangesQuery>,
    request: SignedParts,
) -> ApiResult<Response> {
    let resume = request
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or(q.after);
    let checking = shared.clone();
    blocking(move || {
        let key = signed_by(&checking, &request, b"")?;
        match checking.member(&key)? {
            Some(m) if m.role == Role::Gateway => Ok(()),
            _ => Err(ApiError::forbidden("forbidden", "only enrolled gateways may follow grant changes")),
        }
    })
    .await?;
    let after = resume.or_else(|| latest(&shared).size.checked_sub(1));
    let (notices, closing) = (shared.notices.subscribe(), shared.closing.subscribe());
    // (shared, last index sent or scanned, wake-ups, events to send, whether to wait before reading)
    let state = (shared, after, (notices, closing), VecDeque::<Event>::new(), false);
    let stream = futures_util::stream::unfold(state, |(shared, mut after, mut wake, mut queue, mut wait)| async move {
        loop {
            if let Some(event) = queue.pop_front() {
                return Some((Ok::<_, std::convert::Infallible>(event), (shared, after, wake, queue, wait)));
            }
            let is_grant_change =
                |n: &crate::sequencer::Notice| matches!(n.kind, EntryKind::Revocation | EntryKind::Redaction);
            if wait && !await_notice(&mut wake.0, &mut wake.1, is_grant_change).await {
                return None;
            }
            let reading = shared.clone();
            let read = tokio::task::spawn_blocking(move || {
                // The size first: every change below it is in the rows or already sent.
                let size = latest(&reading).size;
                let published = reading.published();
                let store = reading.store.as_ref();
                let rows: Vec<StoredEntry> =
                    store.grant_changes(after, CHANGES_PER_READ)?.into_iter().filter(|e| e.index < size).collect();
                let scanned = rows.last().map(|e| e.index);
                let changes = rows
                    .into_iter()
                    .filter_map(|e| grant_change(store, e, published.as_deref()).transpose())
                    .collect::<ApiResult<Vec<_>>>()?;
                Ok::<_, ApiError>((size, scanned, changes))
            })
            .await;
            let Ok(Ok((size, scanned, changes))) = read else { return None };
            if let Some(last) = scanned {
                after = Some(last);
                wait = false;
                for change in changes {
                    let data = serde_json::to_string(&change).unwrap_or_default();
                    queue.push_back(Event::default().event("change").id(change.index.to_string()).data(data));
                }
                continue;
            }
            if let Some(last) = size.checked_sub(1) {
                after = Some(after.map_or(last, |a| a.max(last)));
            }
            let head = serde_json::to_string(&FeedHead { size }).unwrap_or_default();
            let event = Event::default().event("head").data(head);
            queue.push_back(match size.checked_sub(1) {
                Some(last) => event.id(last.to_string()),
                None => event,
            });
            wait = true;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

async fn grant_status(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult<Json<GrantStatus>> {
    let grant_id: GrantId =
        id.parse().map_err(|e: custodia_core::grant::BadGrantId| ApiError::malformed(e.to_string()))?;
    let record = blocking(move || Ok(shared.store.grant(&grant_id)?)).await?;
    let g = record.ok_or_else(|| ApiError::not_found(format!("grant {grant_id} is not on this ledger")))?;
    let state = if g.redacted {
        GrantState::Redacted
    } else if g.revoked_index.is_some() {
        GrantState::Revoked
    } else {
        GrantState::Active
    };
    Ok(Json(GrantStatus { grant_id, state, index: g.index, digest: g.digest, revoked_index: g.revoked_index }))
}

/// `GET /v1/grants/{id}/proof`, signed by an enrolled member: the grant's entry and its revocation's (if
/// any), with inclusion proofs against the published checkpoint. A grant the published checkpoint does
/// not cover yet is `409 unwitnessed`: its state cannot be proven until the witnesses cosign.
async fn grant_proof(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    request: SignedParts,
) -> ApiResult<Json<GrantProof>> {
    let grant_id: GrantId =
        id.parse().map_err(|e: custodia_core::grant::BadGrantId| ApiError::malformed(e.to_string()))?;
    blocking(move || {
        let asker = signed_by(&shared, &request, b"")?;
        if shared.member(&asker)?.is_none() {
            return Err(ApiError::forbidden("forbidden", "only enrolled members may ask for a grant's proof"));
        }
        let checkpoint = published(&shared)?;
        let store = shared.store.as_ref();
        let g = store
            .grant(&grant_id)?
            .ok_or_else(|| ApiError::not_found(format!("grant {grant_id} is not on this ledger")))?;
        if g.index >= checkpoint.size {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "unwitnessed",
                format!(
                    "grant {grant_id} is entry {} but the published checkpoint covers {} entries",
                    g.index, checkpoint.size
                ),
            ));
        }
        let entry_at = |index: u64| -> ApiResult<TagEntry> {
            let e = store.entry(index)?.ok_or_else(|| ApiError::unavailable(format!("entry {index} is missing")))?;
            tag_entry(store, e, checkpoint.size)
        };
        let (revocation, revoked_later) = match g.revoked_index {
            Some(index) if index < checkpoint.size => (Some(entry_at(index)?), None),
            later => (None, later),
        };
        Ok(Json(GrantProof {
            checkpoint: checkpoint.note.clone(),
            grant: entry_at(g.index)?,
            revocation,
            revoked_later,
        }))
    })
    .await
}

/// `GET /v1/grants/{id}/entry`, signed by an enrolled member: the grant's entry itself, whose body is
/// sealed. An emergency provider fetches it to open an emergency card's grant with the card's key.
async fn grant_entry(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    request: SignedParts,
) -> ApiResult<Json<GrantEntry>> {
    let grant_id: GrantId =
        id.parse().map_err(|e: custodia_core::grant::BadGrantId| ApiError::malformed(e.to_string()))?;
    blocking(move || {
        let asker = signed_by(&shared, &request, b"")?;
        if shared.member(&asker)?.is_none() {
            return Err(ApiError::forbidden("forbidden", "only enrolled members may fetch a grant's entry"));
        }
        let g = shared
            .store
            .grant(&grant_id)?
            .ok_or_else(|| ApiError::not_found(format!("grant {grant_id} is not on this ledger")))?;
        let entry = shared
            .store
            .entry(g.index)?
            .ok_or_else(|| ApiError::unavailable(format!("grant entry {} is missing", g.index)))?;
        let envelope = envelope_json(&entry)
            .ok_or_else(|| ApiError::not_found(format!("grant {grant_id} was redacted by its patient")))?;
        Ok(Json(GrantEntry { index: g.index, envelope }))
    })
    .await
}

async fn member(State(shared): State<Arc<Shared>>, Path(key): Path<String>) -> ApiResult<Json<MemberInfo>> {
    let key = parse_key(&key)?;
    blocking(move || {
        let m = shared.member(&key)?.ok_or_else(|| ApiError::not_found(format!("{key} is not an enrolled member")))?;
        let entry = shared
            .store
            .entry(m.index)?
            .ok_or_else(|| ApiError::unavailable(format!("enrollment entry {} is missing", m.index)))?;
        let envelope = envelope_json(&entry)
            .ok_or_else(|| ApiError::unavailable(format!("enrollment entry {} has no body", m.index)))?;
        Ok(Json(MemberInfo {
            key: m.key,
            box_key: m.box_key,
            role: m.role,
            name: m.name,
            org: m.org,
            index: m.index,
            leaf: b64(&entry.leaf),
            envelope,
        }))
    })
    .await
}

async fn patient(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    request: SignedParts,
) -> ApiResult<Json<PatientInfo>> {
    let key = parse_key(&key)?;
    blocking(move || {
        let asker = signed_by(&shared, &request, b"")?;
        if asker != key && shared.member(&asker)?.is_none() {
            return Err(ApiError::forbidden(
                "forbidden",
                "only enrolled members and the patient may look a patient up",
            ));
        }
        // A retired key answers with the patient's record as it stands now, so a gateway holding a grant
        // signed before a rotation seals its access events to the key the patient holds today.
        let p = shared
            .current_patient(&key)?
            .ok_or_else(|| ApiError::not_found(format!("{key} is not an enrolled patient")))?;
        Ok(Json(PatientInfo { key: p.key, box_key: p.box_key, tag: p.tag, index: p.index }))
    })
    .await
}

#[derive(Deserialize)]
struct MailQuery {
    ttl: Option<u64>,
}

/// Recovery entries served per request: guardian sets, requests, cancels and rotations, newest.
const RECOVERY_ENTRIES: usize = 64;

/// `GET /v1/recovery/{key}`: signed by anyone (a new device's one-time key, a guardian's share key), since
/// recovery starts from nothing but the patient's public key. Says that the key is a patient's, under which
/// tag, and what the patient's guardian sets, recovery requests, cancels and rotations are; never a share,
/// never who the guardians are.
async fn recovery(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    request: SignedParts,
) -> ApiResult<Json<RecoveryInfo>> {
    let key = parse_key(&key)?;
    blocking(move || {
        signed_by(&shared, &request, b"")?;
        let p = shared
            .current_patient(&key)?
            .ok_or_else(|| ApiError::not_found(format!("{key} is not an enrolled patient")))?;
        let checkpoint = published(&shared)?;
        let store = shared.store.as_ref();
        let mut rows = store.recovery_entries(&p.tag, RECOVERY_ENTRIES)?;
        rows.retain(|e| e.index < checkpoint.size);
        rows.reverse();
        let entries = rows.into_iter().map(|e| tag_entry(store, e, checkpoint.size)).collect::<Result<Vec<_>, _>>()?;
        Ok(Json(RecoveryInfo {
            patient: PatientInfo { key: p.key, box_key: p.box_key, tag: p.tag, index: p.index },
            checkpoint: checkpoint.note.clone(),
            entries,
        }))
    })
    .await
}

async fn mail_post(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    Query(q): Query<MailQuery>,
    request: SignedParts,
    body: Bytes,
) -> ApiResult<Json<MailPosted>> {
    let recipient = parse_key(&key)?;
    let limits = shared.limits.clone();
    let ttl = q.ttl.unwrap_or(limits.max_mail_ttl_seconds);
    if ttl == 0 || ttl > limits.max_mail_ttl_seconds {
        return Err(ApiError::bad_range(format!("ttl must be 1 to {} seconds", limits.max_mail_ttl_seconds)));
    }
    if body.is_empty() {
        return Err(ApiError::malformed("an empty message"));
    }
    blocking(move || {
        let sender = signed_by(&shared, &request, &body)?;
        let sent_at = now().unix();
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| ApiError::unavailable(e.to_string()))?;
        let expires_at = sent_at.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
        let message = MailMessage { id, recipient, sender, sent_at, expires_at, body: body.to_vec() };
        if !shared.store.mailbox_put(&message, limits.max_mail_waiting)? {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!("{recipient}'s mailbox is full ({} messages waiting)", limits.max_mail_waiting),
            ));
        }
        Ok(Json(MailPosted { id: data_encoding::HEXLOWER.encode(&id), expires_at }))
    })
    .await
}

async fn mail_list(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    request: SignedParts,
) -> ApiResult<Json<MailList>> {
    let recipient = parse_key(&key)?;
    blocking(move || {
        let asker = signed_by(&shared, &request, b"")?;
        if asker != recipient {
            return Err(ApiError::forbidden("forbidden", "only the recipient may read a mailbox"));
        }
        let messages = shared.store.mailbox_list(&recipient, now().unix(), shared.limits.max_page)?;
        Ok(Json(MailList {
            messages: messages
                .into_iter()
                .map(|m| Mail {
                    id: data_encoding::HEXLOWER.encode(&m.id),
                    from: m.sender,
                    sent_at: m.sent_at,
                    expires_at: m.expires_at,
                    body: b64(&m.body),
                })
                .collect(),
        }))
    })
    .await
}

async fn mail_delete(
    State(shared): State<Arc<Shared>>,
    Path((key, id)): Path<(String, String)>,
    request: SignedParts,
) -> ApiResult<StatusCode> {
    let recipient = parse_key(&key)?;
    let id: [u8; 16] = data_encoding::HEXLOWER_PERMISSIVE
        .decode(id.as_bytes())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::malformed("a message id is 32 hex digits"))?;
    blocking(move || {
        let asker = signed_by(&shared, &request, b"")?;
        if asker != recipient {
            return Err(ApiError::forbidden("forbidden", "only the recipient may delete from a mailbox"));
        }
        if shared.store.mailbox_delete(&recipient, &id)? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::not_found("no such message (already fetched, deleted or expired)"))
        }
    })
    .await
}

async fn tile(State(shared): State<Arc<Shared>>, Path(path): Path<String>) -> ApiResult<Response> {
    let request = custodia_log::tiles::parse_path(&path)
        .ok_or_else(|| ApiError::not_found(format!("{path:?} is not a tile path")))?;
    let size = latest(&shared).size;
    let level_bits = u32::from(request.level.unwrap_or(0)) * 8;
    let available_at_level = if level_bits >= 64 { 0 } else { size >> level_bits };
    let start = request.index.checked_mul(TILE_WIDTH).ok_or_else(|| ApiError::not_found("tile index out of range"))?;
    let available = available_at_level.saturating_sub(start).min(TILE_WIDTH);
    let width = request.width.unwrap_or(TILE_WIDTH);
    if width > available || available == 0 {
        return Err(ApiError::not_found(format!("tile {path} is not in the tree of size {size} yet")));
    }
    let full = request.width.is_none();
    let body = blocking(move || {
        let store = shared.store.as_ref();
        let mut out = Vec::new();
        match request.level {
            Some(level) => {
                for h in store.read_level(level * 8, start, start + width)? {
                    out.extend_from_slice(&h.0);
                }
            }
            None => {
                for leaf in store.read_leaves(start, start + width)? {
                    // Leaves are 42 bytes; the entry bundle frames each with a big-endian u16 length.
                    out.extend_from_slice(&(leaf.len() as u16).to_be_bytes());
                    out.extend_from_slice(&leaf);
                }
            }
        }
        Ok(out)
    })
    .await?;
    let mut response = ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
    let cache = if full { "public, max-age=31536000, immutable" } else { "no-cache" };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}
