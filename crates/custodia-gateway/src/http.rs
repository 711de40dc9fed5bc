//! The FHIR read API and the checks in front of it.
//!
//! Answers never hint at what was withheld: a search returns the allowed resources and their count; a
//! read of a record the grant does not cover, or of one that does not exist, gets the same refusal. Only
//! the patient's access log says which record was refused and why.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use custodia_core::SigningPublicKey;
use custodia_core::entry::{
    AccessEvent, AccessedResource, Digest, EntryNonce, MAX_ACCESSED_RESOURCES, MAX_RESOURCE_LABELS, Outcome, Role,
};
use custodia_core::grant::{UnverifiedGrant, VerifiedGrant};
use custodia_core::labels;
use custodia_core::policy::{self, Decision, Denial, ReadAttempt};
use custodia_core::purpose::PurposeOfUse;
use custodia_core::reqsig::{self, RequestSignature};
use custodia_core::scope::Interaction;
use custodia_wallet::LedgerError;
use custodia_wallet::ledger::{Member, ProvenGrant};
use serde_json::{Value, json};

use crate::guard::LedgerState;
use crate::matching::Unmatched;
use crate::records::Search;
use crate::{MAX_GRANT_HEADER, Shared, fhir, now};

pub const GRANT_HEADER: &str = "custodia-grant";
pub const SIGNATURE_HEADER: &str = custodia_core::reqsig::HEADER;
pub const CARD_SIGNATURE_HEADER: &str = "custodia-card-signature";
/// The purpose of the read, if not the grant's own.
pub const PURPOSE_HEADER: &str = "custodia-purpose";
/// On an emergency-card read, why the reader opens the card: a code of `EMERGENCY_REASONS`.
pub const EMERGENCY_REASON_HEADER: &str = "custodia-emergency-reason";
/// A patient reading their own records: no grant, the request signed by the patient's current key and
/// bound to [`reqsig::self_access_binding`].
pub const SELF_ACCESS_HEADER: &str = "custodia-self-access";
/// Results per search page unless `_count` says fewer.
const DEFAULT_COUNT: usize = 50;
const MAX_COUNT: usize = 200;
const MAX_QUERY_LEN: usize = 2048;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(crate::ops::healthz))
        .route("/readyz", get(crate::ops::readyz))
        .route("/metrics", get(crate::ops::metrics))
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/{resource_type}", get(search))
        .route("/fhir/{resource_type}/{id}", get(read))
        .fallback(|| async { refusal(StatusCode::NOT_FOUND, "not-supported", "no such endpoint; see /fhir/metadata") })
        .with_state(shared)
}

/// The same records with no checks and no logging at all: the baseline benchmarks set the gateway beside,
/// and a stand-in upstream FHIR server for proxy-mode tests (a CapabilityStatement, and searches in pages
/// of `_count` linked by `next`). Never expose it.
pub fn unchecked_router(records: crate::records::Records) -> Router {
    async fn read(
        State(records): State<Arc<crate::records::Records>>,
        Path((t, id)): Path<(String, String)>,
    ) -> Response {
        match records.read(&t, &id).await {
            Ok(Some(r)) => fhir_response(StatusCode::OK, &r),
            Ok(None) => refusal(StatusCode::NOT_FOUND, "not-found", "no such resource"),
            Err(e) => refusal(StatusCode::BAD_GATEWAY, "exception", &e.to_string()),
        }
    }
    async fn search(
        State(records): State<Arc<crate::records::Records>>,
        Path(t): Path<String>,
        RawQuery(q): RawQuery,
    ) -> Response {
        // `_offset` picks the page; the rest is the search.
        let (mut offset, mut rest) = (0usize, Vec::new());
        for pair in q.as_deref().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            match pair.strip_prefix("_offset=") {
                Some(n) => offset = n.parse().unwrap_or(0),
                None => rest.push(pair),
            }
        }
        let query = rest.join("&");
        let (patient, search, count) = match query_params(Some(&query)) {
            Ok(p) => p,
            Err(r) => return r.response(),
        };
        let Some(patient) = patient else {
            return refusal(StatusCode::BAD_REQUEST, "invalid", "search by patient");
        };
        match records.search(&t, &patient, &search).await {
            Ok(found) => {
                let count = count.max(1);
                let page = found.iter().skip(offset).take(count).map(|r| r.as_ref());
                let mut bundle = fhir::searchset("/fhir", &format!("/fhir/{t}?{query}"), page, found.len());
                if offset + count < found.len()
                    && let Some(links) = bundle.get_mut("link").and_then(Value::as_array_mut)
                {
                    let next = format!("/fhir/{t}?{query}&_offset={}", offset + count);
                    links.push(json!({ "relation": "next", "url": next }));
                }
                fhir_response(StatusCode::OK, &bundle)
            }
            Err(e) => refusal(StatusCode::BAD_GATEWAY, "exception", &e.to_string()),
        }
    }
    async fn metadata(State(records): State<Arc<crate::records::Records>>) -> Response {
        let types = records.resource_types();
        let types: Vec<&str> = types.iter().map(String::as_str).collect();
        fhir_response(StatusCode::OK, &fhir::capability_statement("/fhir", &types, env!("CARGO_PKG_VERSION")))
    }
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/{resource_type}", get(search))
        .route("/fhir/{resource_type}/{id}", get(read))
        .with_state(Arc::new(records))
}

fn fhir_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(fhir::FHIR_JSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn refusal(status: StatusCode, code: &str, text: &str) -> Response {
    fhir_response(status, &fhir::operation_outcome(code, text))
}

async fn metadata(State(shared): State<Arc<Shared>>) -> Response {
    let types = shared.records.resource_types();
    let types: Vec<&str> = types.iter().map(String::as_str).collect();
    fhir_response(
        StatusCode::OK,
        &fhir::capability_statement(&format!("{}/fhir", shared.public_url), &types, env!("CARGO_PKG_VERSION")),
    )
}

/// What the request is, as the access log will say it.
struct Asked {
    interaction: Interaction,
    resource_type: String,
    id: Option<String>,
    query: Option<String>,
}

impl Asked {
    /// `GET Observation?patient=p1&category=laboratory`, as the patient sees it.
    fn describe(&self) -> String {
        let mut s = format!("GET {}", self.resource_type);
        if let Some(id) = &self.id {
            s.push('/');
            s.push_str(id);
        }
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s.chars().take(2000).collect()
    }

    fn path_and_query(&self) -> String {
        let mut s = format!("/fhir/{}", self.resource_type);
        if let Some(id) = &self.id {
            s.push('/');
            s.push_str(id);
        }
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }
}

async fn read(
    State(shared): State<Arc<Shared>>,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let asked = Asked { interaction: Interaction::Read, resource_type, id: Some(id), query };
    handle(shared, asked, headers).await
}

async fn search(
    State(shared): State<Arc<Shared>>,
    Path(resource_type): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let asked = Asked { interaction: Interaction::Search, resource_type, id: None, query };
    handle(shared, asked, headers).await
}

/// Who is reading, under which grant, once the request's proofs checked out.
struct Reader {
    key: SigningPublicKey,
    member: Option<Member>,
    break_glass: bool,
    purpose: PurposeOfUse,
    /// The reason given for an emergency-card read.
    emergency_reason: Option<String>,
}

/// A refusal: what the requester is told, and what the patient's log says (when the patient is known).
struct Refused {
    status: StatusCode,
    code: &'static str,
    told: String,
    logged: String,
}

impl Refused {
    fn same(status: StatusCode, code: &'static str, text: impl Into<String>) -> Self {
        let text = text.into();
        Self { status, code, told: text.clone(), logged: text }
    }

    fn response(&self) -> Response {
        crate::ops::READS_REFUSED.add(1);
        crate::ops::REFUSALS.add(self.code, 1);
        refusal(self.status, self.code, &self.told)
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(shared: Arc<Shared>, asked: Asked, headers: HeaderMap) -> Response {
    if asked.query.as_ref().is_some_and(|q| q.len() > MAX_QUERY_LEN) {
        return refusal(StatusCode::URI_TOO_LONG, "too-costly", "the query is too long");
    }
    if asked.resource_type.len() > 64 || !is_type_name(&asked.resource_type) {
        return refusal(StatusCode::NOT_FOUND, "not-supported", "not a FHIR resource type");
    }
    if !shared.records.serves(&asked.resource_type) {
        return refusal(
            StatusCode::NOT_FOUND,
            "not-supported",
            "this server offers no such resource type; see /fhir/metadata",
        );
    }
    let at = now();
    let mut nonce = None;
    let response = if headers.contains_key(SELF_ACCESS_HEADER) {
        own_records(&shared, &asked, &headers, at, &mut nonce).await
    } else {
        // The grant first: without one there is no patient to tell, so nothing is logged.
        let grant = match grant_of(&shared, &headers) {
            Ok(g) => g,
            Err(r) => return r.response(),
        };
        answer(&shared, &asked, &headers, &grant, at, &mut nonce).await
    };
    // The request's nonce commits with its event, or before: a replay after a restart is refused too.
    if let Some(written) = nonce
        && written.wait().await.is_err()
    {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "exception", "the request could not be recorded");
    }
    response
}

async fn answer(
    shared: &Arc<Shared>,
    asked: &Asked,
    headers: &HeaderMap,
    grant: &Arc<VerifiedGrant>,
    at: custodia_core::time::Timestamp,
    nonce: &mut Option<crate::events::Written>,
) -> Response {
    let reader = match check_proofs(shared, asked, headers, grant, nonce).await {
        Ok(r) => r,
        Err((refused, signer, member)) => {
            // A signer is named only once its signature checked out, and as a member only if enrolled.
            let who = Reader {
                key: signer.unwrap_or(grant.grantee),
                member,
                break_glass: false,
                purpose: grant.purpose,
                emergency_reason: None,
            };
            log_refusal(shared, asked, grant, &who, &refused).await;
            return refused.response();
        }
    };
    if reader.break_glass {
        let opened = shared.caches.emergency_window(grant.id, &reader.key, at.unix(), grant.not_after.unix());
        if at.unix() >= opened.saturating_add(crate::guard::EMERGENCY_WINDOW_SECONDS) {
            let since = custodia_core::time::Timestamp::from_unix(opened).map(|t| t.to_string()).unwrap_or_default();
            let refused = Refused::same(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this emergency card's window for you closed 12 hours after your first read under it ({since})"
                ),
            );
            log_refusal(shared, asked, grant, &reader, &refused).await;
            return refused.response();
        }
    }
    let attempt =
        |reads_so_far| ReadAttempt { interaction: asked.interaction, purpose: reader.purpose, at, reads_so_far };
    // Grant-wide conditions, for a search as for a read: time, purpose, read limit. The read is counted
    // now and given back if it is not served.
    let (reads, slot) = shared.caches.reserve_read(grant.id, grant.not_after.unix());
    let probe = json!({"resourceType": asked.resource_type});
    if let Ok(Decision::Deny(d)) = policy::check(grant, &probe, &attempt(reads))
        && !matches!(d, Denial::OutOfScope { .. } | Denial::LabelNotAllowed { .. })
    {
        let refused = Refused::same(StatusCode::FORBIDDEN, "forbidden", d.to_string());
        log_refusal(shared, asked, grant, &reader, &refused).await;
        return refused.response();
    }
    if let Err(refused) = ledger_state(shared, grant).await {
        log_refusal(shared, asked, grant, &reader, &refused).await;
        return refused.response();
    }
    let patient_id = match crate::matching::patient_id(shared, grant.patient).await {
        Ok(id) => id,
        Err(unmatched) => {
            let refused = match unmatched {
                Unmatched::NotLinked(why) => Refused {
                    status: StatusCode::NOT_FOUND,
                    code: "not-found",
                    told: "this gateway holds no records of the grant's patient".into(),
                    logged: why,
                },
                Unmatched::Unavailable(why) => Refused {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "transient",
                    told: "the patient's record could not be looked up just now; try again".into(),
                    logged: why,
                },
            };
            log_refusal(shared, asked, grant, &reader, &refused).await;
            return refused.response();
        }
    };
    let outcome = match asked.interaction {
        Interaction::Read => serve_read(shared, asked, Some((grant, &attempt(reads))), &patient_id).await,
        Interaction::Search => serve_search(shared, asked, Some((grant, &attempt(reads))), &patient_id).await,
    };
    let (response, resources, refused) = match outcome {
        Ok((response, resources)) => (response, resources, None),
        Err((refused, resources)) => (refused.response(), resources, Some(refused)),
    };
    let allowed = refused.is_none();
    let event = event(shared, asked, grant.patient, Some(grant.id), &reader, at, resources, refused.map(|r| r.logged));
    let recorded = if allowed {
        shared.outbox.record_read(event, grant.not_after).await
    } else {
        shared.outbox.record(event).await
    };
    match recorded {
        Ok(()) => {
            if allowed {
                slot.keep();
                crate::ops::READS_ALLOWED.add(1);
            }
            response
        }
        // No record leaves without its access event.
        Err(e) => refusal(StatusCode::SERVICE_UNAVAILABLE, "exception", &format!("the read could not be logged: {e}")),
    }
}

/// A patient's read of their own records: every record of theirs, whatever its labels, logged like any
/// read (purpose PATRQT, no grant). Only the patient's current key is honoured: a key rotated away (a lost
/// or stolen phone's) is refused, and the attempt logged for the patient.
async fn own_records(
    shared: &Arc<Shared>,
    asked: &Asked,
    headers: &HeaderMap,
    at: custodia_core::time::Timestamp,
    nonce: &mut Option<crate::events::Written>,
) -> Response {
    let key = match signed_request(shared, asked, headers, &reqsig::self_access_binding(), nonce).await {
        Ok(signature) => signature.key,
        Err((refused, _, _)) => return refused.response(),
    };
    let who = &Reader {
        key,
        member: None,
        break_glass: false,
        purpose: PurposeOfUse::PATIENT_REQUESTED,
        emergency_reason: None,
    };
    let tell = |refused: Refused, resources: Vec<AccessedResource>| async move {
        let e = event(shared, asked, key, None, who, at, resources, Some(refused.logged.clone()));
        if let Err(e) = shared.outbox.record(e).await {
            custodia_net::log::warn("custodia-gateway", format_args!("a refused attempt could not be logged: {e}"));
        }
        refused.response()
    };
    match crate::matching::is_current_key(shared, key).await {
        Ok(Some(true)) => {}
        // Not a patient on the ledger: there is no one to tell.
        Ok(None) => {
            return Refused::same(StatusCode::FORBIDDEN, "forbidden", "the signer is not a patient on the ledger")
                .response();
        }
        Ok(Some(false)) => {
            let refused = Refused {
                status: StatusCode::FORBIDDEN,
                code: "forbidden",
                told: "this key was rotated away; sign with the patient's current key".into(),
                logged: "a key you rotated away asked for your records".into(),
            };
            return tell(refused, Vec::new()).await;
        }
        Err(why) => return unavailable(&why).response(),
    }
    let patient_id = match crate::matching::patient_id(shared, key).await {
        Ok(id) => id,
        Err(Unmatched::NotLinked(why)) => {
            let refused = Refused {
                status: StatusCode::NOT_FOUND,
                code: "not-found",
                told: "this gateway holds no records of yours".into(),
                logged: why,
            };
            return tell(refused, Vec::new()).await;
        }
        Err(Unmatched::Unavailable(why)) => return unavailable(&why).response(),
    };
    let outcome = match asked.interaction {
        Interaction::Read => serve_read(shared, asked, None, &patient_id).await,
        Interaction::Search => serve_search(shared, asked, None, &patient_id).await,
    };
    match outcome {
        Ok((response, resources)) => {
            let e = event(shared, asked, key, None, who, at, resources, None);
            match shared.outbox.record(e).await {
                Ok(()) => {
                    crate::ops::READS_ALLOWED.add(1);
                    response
                }
                Err(e) => {
                    refusal(StatusCode::SERVICE_UNAVAILABLE, "exception", &format!("the read could not be logged: {e}"))
                }
            }
        }
        Err((refused, resources)) => tell(refused, resources).await,
    }
}

fn is_type_name(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && t.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Decodes and verifies the presented grant, or finds it among those verified before.
fn grant_of(shared: &Shared, headers: &HeaderMap) -> Result<Arc<VerifiedGrant>, Refused> {
    let unauthorized = |text: &str| Refused::same(StatusCode::UNAUTHORIZED, "security", text);
    let text = header_str(headers, GRANT_HEADER).ok_or_else(|| {
        unauthorized("present the grant in the Custodia-Grant header and sign the request with the grantee's key")
    })?;
    if text.len() > MAX_GRANT_HEADER {
        return Err(unauthorized("the Custodia-Grant header is too large"));
    }
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(text.trim().as_bytes())
        .map_err(|_| unauthorized("the Custodia-Grant header is not base64url"))?;
    let digest = Digest::of(&bytes);
    if let Some(g) = shared.caches.grant(&digest) {
        return Ok(g);
    }
    let grant = UnverifiedGrant::decode(&bytes)
        .and_then(|g| g.verify())
        .map_err(|e| unauthorized(&format!("the grant does not verify: {e}")))?;
    let grant = Arc::new(grant);
    shared.caches.keep_grant(digest, grant.clone());
    Ok(grant)
}

/// A refusal, with the signer if the signature checked out, and their enrollment if looked up.
type ProofFailure = (Refused, Option<SigningPublicKey>, Option<Member>);

/// The request's signature (and an emergency card's), its freshness, and who the reader is.
async fn check_proofs(
    shared: &Arc<Shared>,
    asked: &Asked,
    headers: &HeaderMap,
    grant: &Arc<VerifiedGrant>,
    nonce: &mut Option<crate::events::Written>,
) -> Result<Reader, ProofFailure> {
    let security = |text: String| Refused::same(StatusCode::UNAUTHORIZED, "security", text);
    let url = format!("{}{}", shared.public_url, asked.path_and_query());
    let binding = custodia_core::entry::statement_digest(grant.envelope());
    let at = now();
    let signature = signed_request(shared, asked, headers, &binding, nonce).await?;
    let key = signature.key;
    let card = match header_str(headers, CARD_SIGNATURE_HEADER) {
        None => None,
        Some(h) => {
            let card =
                RequestSignature::parse(h).map_err(|e| (security(format!("card signature: {e}")), Some(key), None))?;
            if card.nonce != signature.nonce || card.at != signature.at {
                return Err((security("the card's signature is not over this request".into()), Some(key), None));
            }
            card.verify_bound("GET", &url, &binding, at)
                .map_err(|e| (security(format!("card signature: {e}")), Some(key), None))?;
            Some(card.key)
        }
    };
    let member = member(shared, key).await.map_err(|r| (r, Some(key), None))?;
    let forbidden = |text: &str| (Refused::same(StatusCode::FORBIDDEN, "forbidden", text), Some(key), member.clone());
    let break_glass = if grant.emergency_card {
        if card != Some(grant.grantee) {
            return Err(forbidden("an emergency card's grant needs the card: sign with its key as well"));
        }
        if member.as_ref().map(|m| m.role) != Some(Role::Emergency) {
            return Err(forbidden("an emergency card is honoured only for enrolled emergency providers"));
        }
        true
    } else {
        if key != grant.grantee {
            return Err(forbidden("the request is not signed by the grant's grantee"));
        }
        if member.is_none() {
            return Err(forbidden("the grantee is not an enrolled member of the network"));
        }
        false
    };
    let purpose = match header_str(headers, PURPOSE_HEADER) {
        None => grant.purpose,
        Some(p) => p.parse().map_err(|e: custodia_core::purpose::UnknownPurpose| forbidden(&e.to_string()))?,
    };
    // An emergency card is opened for a stated reason, which the patient and their guardians see.
    let emergency_reason = match header_str(headers, EMERGENCY_REASON_HEADER) {
        Some(code) if custodia_core::entry::emergency_reason_words(code).is_some() => Some(code.to_owned()),
        _ if break_glass => {
            let codes: Vec<&str> = custodia_core::entry::EMERGENCY_REASONS.iter().map(|(c, _)| *c).collect();
            return Err(forbidden(&format!(
                "an emergency card is read with a reason (Custodia-Emergency-Reason): one of {}",
                codes.join(", ")
            )));
        }
        _ => None,
    };
    Ok(Reader { key, member, break_glass, purpose, emergency_reason })
}

/// The request's signature, checked over this request and `binding`, first use of its nonce (recorded
/// with the next journal write, which `nonce` waits for).
async fn signed_request(
    shared: &Arc<Shared>,
    asked: &Asked,
    headers: &HeaderMap,
    binding: &Digest,
    nonce: &mut Option<crate::events::Written>,
) -> Result<RequestSignature, ProofFailure> {
    let security = |text: String| Refused::same(StatusCode::UNAUTHORIZED, "security", text);
    let header = header_str(headers, SIGNATURE_HEADER)
        .ok_or_else(|| (security("the request is not signed (Custodia-Signature)".into()), None, None))?;
    let signature = RequestSignature::parse(header).map_err(|e| (security(e.to_string()), None, None))?;
    let url = format!("{}{}", shared.public_url, asked.path_and_query());
    signature.verify_bound("GET", &url, binding, now()).map_err(|e| (security(e.to_string()), None, None))?;
    let key = signature.key;
    if !shared.caches.first_use(&key, &signature.nonce) {
        return Err((security("this signed request was already used (a replay)".into()), Some(key), None));
    }
    // Kept until a signature made at `at` could no longer be accepted.
    let expires = signature.at.checked_add(reqsig::MAX_SKEW_SECONDS.unsigned_abs() + 1).unwrap_or(signature.at);
    *nonce = Some(shared.outbox.remember_nonce(&key, &signature.nonce, expires).map_err(|e| {
        let refused = Refused::same(StatusCode::SERVICE_UNAVAILABLE, "exception", format!("{e}"));
        (refused, Some(key), None)
    })?);
    Ok(signature)
}

/// The ledger's enrollment of `key`, or `None` if it is no member.
async fn member(shared: &Arc<Shared>, key: SigningPublicKey) -> Result<Option<Member>, Refused> {
    if let Some(m) = shared.caches.member(&key) {
        return Ok(m);
    }
    let looking = shared.clone();
    let found = tokio::task::spawn_blocking(move || {
        let mut ledger = looking.verifying.lock().map_err(|_| LedgerError::Audit("a lock is poisoned".into()))?;
        match ledger.member(&key) {
            Ok(m) => Ok(Some(m)),
            Err(LedgerError::NotAMember(_)) => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(|e| unavailable(&e.to_string()))?
    .map_err(|e| unavailable(&e.to_string()))?;
    shared.caches.keep_member(key, found.clone());
    Ok(found)
}

fn unavailable(why: &str) -> Refused {
    Refused {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "transient",
        told: "the ledger cannot be reached to check the grant; try again".into(),
        logged: format!("the ledger could not be reached: {why}"),
    }
}

/// Checks the grant stands on the ledger: by the state the ledger's feed keeps current, or, while the
/// feed is behind, by a state at most [`crate::STATUS_TTL`] old.
async fn ledger_state(shared: &Arc<Shared>, grant: &Arc<VerifiedGrant>) -> Result<(), Refused> {
    let state = match shared.caches.state(&grant.id, shared.feed.is_fresh()) {
        Some(s) => s,
        None => {
            let (asking, id) = (shared.clone(), grant.id);
            let started = Instant::now();
            crate::ops::STATE_LOOKUPS.add(1);
            // The grant's state is taken from the ledger only with its proof: the grant's entry (and its
            // revocation's) proven into a checkpoint the witnesses cosigned.
            let proven = tokio::task::spawn_blocking(move || {
                let client = &asking.lookups[usize::from(id.as_bytes()[0]) % asking.lookups.len()];
                let mut verifying = client.lock().map_err(|_| LedgerError::Clock)?;
                verifying.grant_state(&asking.identity, &id)
            })
            .await
            .map_err(|e| unavailable(&e.to_string()))?;
            let state = match proven {
                Ok(ProvenGrant::Active { digest, tag, .. }) => LedgerState::Active(digest, tag),
                Ok(ProvenGrant::Revoked { .. }) => LedgerState::Revoked,
                Ok(ProvenGrant::Redacted) => LedgerState::Redacted,
                Err(LedgerError::Problem { status: 404, .. }) => LedgerState::NotOnLedger,
                Err(LedgerError::Problem { code, .. }) if code == "unwitnessed" => {
                    return Err(Refused {
                        status: StatusCode::SERVICE_UNAVAILABLE,
                        code: "transient",
                        told: "the grant is logged but not yet witnessed; try again in a moment".into(),
                        logged: "the grant is newer than the ledger's witnessed checkpoint".into(),
                    });
                }
                Err(e) if e.is_verification_failure() => {
                    custodia_net::log::error(
                        "custodia-gateway",
                        format_args!("the ledger's proof of grant {id} failed: {e}"),
                    );
                    return Err(Refused {
                        status: StatusCode::SERVICE_UNAVAILABLE,
                        code: "transient",
                        told: "the ledger's answer about the grant did not check out".into(),
                        logged: format!("the ledger's proof of the grant failed: {e}"),
                    });
                }
                Err(e) => return Err(unavailable(&e.to_string())),
            };
            shared.caches.keep_state(grant.id, state.clone(), started);
            state
        }
    };
    let forbidden = |text: &str| Err(Refused::same(StatusCode::FORBIDDEN, "forbidden", text));
    match state {
        LedgerState::Active(digest, _) if digest == custodia_core::entry::statement_digest(grant.envelope()) => Ok(()),
        LedgerState::Active(..) => forbidden("the grant does not match the one on the ledger"),
        LedgerState::Revoked => forbidden("the patient revoked this grant"),
        LedgerState::Redacted => forbidden("the patient erased this grant"),
        LedgerState::NotOnLedger => forbidden("the grant is not on the ledger"),
    }
}

/// The answer when the upstream FHIR server failed: 504 when it did not answer in time, else 502.
fn upstream_failed(e: &crate::records::RecordsError) -> Refused {
    match e {
        crate::records::RecordsError::Timeout => Refused::same(StatusCode::GATEWAY_TIMEOUT, "timeout", e.to_string()),
        _ => Refused::same(StatusCode::BAD_GATEWAY, "exception", e.to_string()),
    }
}

type Served = Result<(Response, Vec<AccessedResource>), (Refused, Vec<AccessedResource>)>;

/// The refusal for a record outside the grant or not there at all: the requester cannot tell which.
fn not_covered(logged: String) -> Refused {
    Refused {
        status: StatusCode::FORBIDDEN,
        code: "forbidden",
        told: "this grant does not cover that record, or there is no such record".into(),
        logged,
    }
}

/// Serves a read of `patient`'s record: under a grant (checked by the policy), or, with `None`, to the
/// patient themselves.
async fn serve_read(
    shared: &Shared,
    asked: &Asked,
    under: Option<(&VerifiedGrant, &ReadAttempt)>,
    patient: &str,
) -> Served {
    let (resource_type, id) = (&asked.resource_type, asked.id.as_deref().unwrap_or_default());
    let resource = match shared.records.read(resource_type, id).await {
        Ok(r) => r,
        Err(e) => return Err((upstream_failed(&e), Vec::new())),
    };
    let Some(resource) = resource.filter(|r| shared.records.patient_of(r) == Some(patient)) else {
        return Err((not_covered(format!("no {resource_type}/{id} of this patient")), Vec::new()));
    };
    let accessed = vec![accessed(&resource)];
    let Some((grant, attempt)) = under else { return Ok((fhir_response(StatusCode::OK, &resource), accessed)) };
    match policy::check(grant, &resource, attempt) {
        Ok(Decision::Allow) => Ok((fhir_response(StatusCode::OK, &resource), accessed)),
        Ok(Decision::Deny(d)) => Err((not_covered(d.to_string()), accessed)),
        Err(e) => Err((not_covered(format!("the record could not be checked: {e}")), accessed)),
    }
}

fn query_params(query: Option<&str>) -> Result<(Option<String>, Search, usize), Refused> {
    let mut patient = None;
    let mut search = Search::default();
    let mut count = DEFAULT_COUNT;
    let bad = |text: String| Refused::same(StatusCode::BAD_REQUEST, "invalid", text);
    for (name, value) in url_pairs(query.unwrap_or_default()) {
        match name.as_str() {
            "patient" | "subject" | "_id" => patient = Some(value.trim_start_matches("Patient/").to_owned()),
            "category" => search.category = Some(value),
            "code" => search.code = Some(value),
            "_count" => {
                count = value
                    .parse::<usize>()
                    .map_err(|_| bad(format!("_count {value:?} is not a number")))?
                    .min(MAX_COUNT);
            }
            "_format" => {}
            other => return Err(bad(format!("search parameter {other:?} is not supported"))),
        }
    }
    Ok((patient, search, count))
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .map(|h| u8::from_str_radix(h, 16))
            {
                Some(Ok(b)) => {
                    out.push(b);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves a search of `patient`'s records: what a grant allows, or, with `None`, all of them to the
/// patient themselves.
async fn serve_search(
    shared: &Shared,
    asked: &Asked,
    under: Option<(&VerifiedGrant, &ReadAttempt)>,
    patient: &str,
) -> Served {
    let (named, search, count) = query_params(asked.query.as_deref()).map_err(|r| (r, Vec::new()))?;
    if named.as_deref().is_some_and(|p| p != patient) {
        return Err((not_covered("a search for another patient".into()), Vec::new()));
    }
    let resource_type = &asked.resource_type;
    // A type no scope of the grant names is refused outright: that says something about the grant, not
    // about the records.
    let covered = under
        .is_none_or(|(grant, _)| grant.scopes.iter().any(|s| s.resource_type().is_none_or(|t| t == resource_type)));
    if !covered {
        let refused =
            Refused::same(StatusCode::FORBIDDEN, "forbidden", format!("this grant does not cover {resource_type}"));
        return Err((refused, Vec::new()));
    }
    let found = match shared.records.search(resource_type, patient, &search).await {
        Ok(f) => f,
        Err(e) => return Err((upstream_failed(&e), Vec::new())),
    };
    let allowed: Vec<&Arc<Value>> = found
        .iter()
        .filter(|r| {
            under.is_none_or(|(grant, attempt)| matches!(policy::check(grant, r, attempt), Ok(Decision::Allow)))
        })
        .collect();
    let page: Vec<&Value> = allowed.iter().take(count).map(|r| r.as_ref()).collect();
    let self_link = format!("{}{}", shared.public_url, asked.path_and_query());
    let bundle =
        fhir::searchset(&format!("{}/fhir", shared.public_url), &self_link, page.iter().copied(), allowed.len());
    let resources = page.iter().take(MAX_ACCESSED_RESOURCES).map(|r| accessed(r)).collect();
    Ok((fhir_response(StatusCode::OK, &bundle), resources))
}

/// A resource as the access log names it: type, id, restricting labels, category.
fn accessed(resource: &Value) -> AccessedResource {
    let text = |k: &str| resource.get(k).and_then(Value::as_str).unwrap_or_default();
    let labels = resource
        .pointer("/meta/security")
        .and_then(Value::as_array)
        .map(|codings| {
            codings
                .iter()
                .filter_map(|c| {
                    let code = c.get("code")?.as_str()?;
                    let system = c.get("system").and_then(Value::as_str);
                    labels::is_restricting(system, code).then(|| code.parse().ok()).flatten()
                })
                .take(MAX_RESOURCE_LABELS)
                .collect()
        })
        .unwrap_or_default();
    AccessedResource {
        resource_type: text("resourceType").chars().take(64).collect(),
        id: text("id").chars().take(64).collect(),
        labels,
        category: fhir::category_word(resource).map(|c| c.chars().take(64).collect()),
    }
}

#[allow(clippy::too_many_arguments)] // Each is one field of the event; a struct would only rename them.
fn event(
    shared: &Shared,
    asked: &Asked,
    patient: SigningPublicKey,
    grant_id: Option<custodia_core::grant::GrantId>,
    who: &Reader,
    at: custodia_core::time::Timestamp,
    resources: Vec<AccessedResource>,
    reason: Option<String>,
) -> AccessEvent {
    AccessEvent {
        id: EntryNonce::generate(),
        gateway: shared.identity.signing_public(),
        patient,
        reader: who.key,
        reader_name: match &who.member {
            Some(m) => m.name.clone(),
            None if who.key == patient => "the patient".into(),
            None if who.key == shared.identity.signing_public() => {
                "someone unverified (no valid request signature)".into()
            }
            None => "unknown (not enrolled)".into(),
        },
        organisation: who.member.as_ref().map_or_else(String::new, |m| m.org.clone()),
        grant_id,
        purpose: who.purpose,
        at,
        outcome: if reason.is_some() { Outcome::Denied } else { Outcome::Allowed },
        break_glass: who.break_glass,
        request: asked.describe(),
        resources,
        reason: reason.map(|r| r.chars().take(500).collect()),
        emergency_reason: who.emergency_reason.clone(),
    }
}

/// Logs a refused attempt about the grant's patient, within the grant's budget for refusals.
async fn log_refusal(shared: &Shared, asked: &Asked, grant: &VerifiedGrant, who: &Reader, refused: &Refused) {
    if !shared.caches.may_log_denial(grant.id) {
        return;
    }
    let e = event(shared, asked, grant.patient, Some(grant.id), who, now(), Vec::new(), Some(refused.logged.clone()));
    if let Err(e) = shared.outbox.record(e).await {
        custodia_net::log::warn("custodia-gateway", format_args!("a refused attempt could not be logged: {e}"));
    }
}
