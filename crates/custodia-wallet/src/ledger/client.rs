//! The ledger's HTTP API, one blocking call per endpoint, with nothing verified yet.
//!
//! Every request has a timeout, every response body is read with a cap, and an RFC 9457 problem is
//! turned into [`LedgerError::Problem`] with its code and detail. What the answers *mean* is checked by
//! [`super::Ledger`] and [`super::verify`]; this layer only moves bytes and parses JSON.

use std::io::Read;
use std::time::Duration;

use custodia_core::entry::Tag;
use custodia_core::grant::GrantId;
use custodia_core::ledger_api::{
    AppendRequest, AppendResponse, ConsistencyProof, GrantEntry, GrantProof, GrantStatus, InclusionProof, LedgerInfo,
    MailList, MailPosted, MemberInfo, PROBLEM_PREFIX, PatientInfo, Problem, RecoveryInfo, TagEntries,
};
use custodia_core::time::Timestamp;
use custodia_core::{Identity, SigningPublicKey, reqsig};
use reqwest::Method;
use reqwest::blocking::{Client, Response};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::LedgerError;

/// The largest response body read from a ledger. A page of entries or an append receipt is far smaller;
/// a larger answer is refused rather than buffered.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// An error body is a short problem document; only this much of one is read.
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// The whole of one request (connect, send, read the answer). Generous for loopback and a LAN; a ledger
/// slower than this is treated as unreachable rather than waited on.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest ledger URL accepted.
const MAX_URL_LEN: usize = 2048;
/// Mailbox message ids are short tokens; anything else is not put in a path.
const MAX_MAIL_ID_LEN: usize = 128;

/// A blocking HTTP client for one ledger.
///
/// Built on reqwest's blocking client, which runs its own small runtime: call it from plain threads (the
/// CLI, a worker thread of the app), never from inside an async task.
#[derive(Clone, Debug)]
pub struct LedgerClient {
    base: String,
    http: Client,
}

/// Checks a ledger URL and returns it in the one form a wallet stores: `scheme://host[:port]`, no
/// trailing slash. The ledger is at the root of its host: no path, query, fragment or credentials.
pub fn normalise_url(url: &str) -> Result<String, LedgerError> {
    let bad = |reason: &str| LedgerError::BadUrl { url: url.chars().take(200).collect(), reason: reason.to_owned() };
    if url.len() > MAX_URL_LEN {
        return Err(bad("it is too long"));
    }
    let parsed = reqwest::Url::parse(url.trim()).map_err(|_| bad("it is not a URL"))?;
    custodia_net::client::check_url(&parsed).map_err(|e| bad(&e.to_string()))?;
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("give the ledger's root, scheme://host[:port], with no path or query"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("it must not carry a user name or password"));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// A client builder with the process's trust (platform roots plus `--ca-file`), timeouts, no redirects (a
/// signed request is bound to its path; a redirect would only break it or leak it elsewhere) and Custodia's
/// user agent.
pub fn http_client(url: &str) -> Result<Client, LedgerError> {
    let trust = custodia_net::Trust::global()
        .map_err(|e| LedgerError::Transport { url: url.to_owned(), reason: e.to_string() })?;
    trust
        .blocking_client()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("custodia/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| LedgerError::Transport { url: url.to_owned(), reason: custodia_net::client::explain(&e) })
}

/// A failed exchange with the server at `url`: a refused certificate, or an outage.
pub(crate) fn connection_error(url: &str, error: &(dyn std::error::Error + 'static)) -> LedgerError {
    let reason = custodia_net::client::explain(error);
    if custodia_net::client::is_certificate_refusal(error) {
        LedgerError::Refused { url: url.to_owned(), reason }
    } else {
        LedgerError::Transport { url: url.to_owned(), reason }
    }
}

/// The seconds a signed request carries: the real clock, because the ledger compares it with its own.
pub(crate) fn request_time() -> Result<Timestamp, LedgerError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .and_then(|s| Timestamp::from_unix(s).ok());
    secs.ok_or(LedgerError::Clock)
}

impl LedgerClient {
    /// A client for the ledger at `url`: `https://host[:port]` (`http://` on loopback), with no path, query or
    /// fragment.
    pub fn new(url: &str) -> Result<Self, LedgerError> {
        let base = normalise_url(url)?;
        let http = http_client(&base)?;
        Ok(Self { base, http })
    }

    /// The ledger's root URL, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends one request and returns the (capped) body of a successful answer.
    /// `target` is the path and query, exactly as sent and, for a signed request, as signed.
    fn send(
        &self,
        method: Method,
        target: &str,
        body: Option<(Vec<u8>, &'static str)>,
        signer: Option<&Identity>,
    ) -> Result<Vec<u8>, LedgerError> {
        let response = self.start(
            self.http.request(method.clone(), format!("{}{target}", self.base)),
            method,
            target,
            body,
            signer,
        )?;
        read_capped(response, MAX_RESPONSE_BYTES).map_err(|e| match e {
            ReadError::TooLarge => LedgerError::TooLarge { target: target.to_owned(), limit: MAX_RESPONSE_BYTES },
            ReadError::Io(e) => connection_error(&self.base, &e),
        })
    }

    /// Sends `request` (signed if `signer` is given) and returns a successful answer unread, or the
    /// ledger's problem.
    fn start(
        &self,
        mut request: reqwest::blocking::RequestBuilder,
        method: Method,
        target: &str,
        body: Option<(Vec<u8>, &'static str)>,
        signer: Option<&Identity>,
    ) -> Result<Response, LedgerError> {
        let bytes = body.as_ref().map(|(b, _)| b.as_slice()).unwrap_or_default();
        if let Some(identity) = signer {
            request =
                request.header(reqsig::HEADER, reqsig::sign(identity, method.as_str(), target, bytes, request_time()?));
        }
        if let Some((bytes, content_type)) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
        }
        let response = request.send().map_err(|e| connection_error(&self.base, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let is_problem = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/problem+json"));
        let body = read_capped(response, MAX_ERROR_BYTES).unwrap_or_default();
        match serde_json::from_slice::<Problem>(&body) {
            Ok(problem) if is_problem || problem.problem_type.starts_with(PROBLEM_PREFIX) => {
                Err(LedgerError::Problem {
                    status: status.as_u16(),
                    code: problem.code().to_owned(),
                    detail: clean(&problem.detail),
                    entry: problem.entry,
                })
            }
            _ => Err(LedgerError::Status { target: target.to_owned(), status: status.as_u16() }),
        }
    }

    fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        target: &str,
        body: Option<(Vec<u8>, &'static str)>,
        signer: Option<&Identity>,
    ) -> Result<T, LedgerError> {
        let bytes = self.send(method, target, body, signer)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| LedgerError::Malformed { target: target.to_owned(), reason: e.to_string() })
    }

    fn get<T: DeserializeOwned>(&self, target: &str) -> Result<T, LedgerError> {
        self.json(Method::GET, target, None, None)
    }

    /// `GET /v1/info`.
    pub fn info(&self) -> Result<LedgerInfo, LedgerError> {
        self.get("/v1/info")
    }

    /// `GET /checkpoint`: the signed note, unverified.
    pub fn checkpoint(&self) -> Result<String, LedgerError> {
        let bytes = self.send(Method::GET, "/checkpoint", None, None)?;
        String::from_utf8(bytes)
            .map_err(|_| LedgerError::Malformed { target: "/checkpoint".into(), reason: "not UTF-8 text".into() })
    }

    /// `POST /v1/entries` with these envelopes (each one DSSE JSON), appended together or not at all.
    pub fn append(&self, envelopes: &[String]) -> Result<AppendResponse, LedgerError> {
        let entries = envelopes
            .iter()
            .map(|e| RawValue::from_string(e.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LedgerError::Malformed { target: "an entry to post".into(), reason: e.to_string() })?;
        let body = serde_json::to_vec(&AppendRequest { entries })
            .map_err(|e| LedgerError::Malformed { target: "an entry to post".into(), reason: e.to_string() })?;
        self.json(Method::POST, "/v1/entries", Some((body, "application/json")), None)
    }

    /// `GET /v1/proof/inclusion?index=I&size=N`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof, LedgerError> {
        self.get(&format!("/v1/proof/inclusion?index={index}&size={size}"))
    }

    /// `GET /v1/proof/consistency?old=M&new=N`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<ConsistencyProof, LedgerError> {
        self.get(&format!("/v1/proof/consistency?old={old}&new={new}"))
    }

    /// `GET /v1/tags/{tag}/entries?after=I&limit=L`, signed by the patient who owns the tag. Without
    /// `after`, from the first entry.
    pub fn tag_entries(
        &self,
        patient: &Identity,
        after: Option<u64>,
        limit: Option<usize>,
    ) -> Result<TagEntries, LedgerError> {
        let tag: Tag = patient.ledger_tag();
        let mut target = format!("/v1/tags/{tag}/entries");
        let query: Vec<String> =
            after.map(|a| format!("after={a}")).into_iter().chain(limit.map(|l| format!("limit={l}"))).collect();
        if !query.is_empty() {
            target.push('?');
            target.push_str(&query.join("&"));
        }
        self.json(Method::GET, &target, None, Some(patient))
    }

    /// `GET /v1/tags/{tag}/events`, signed by the patient who owns the tag: the index of each new entry
    /// under the tag as the ledger sequences it, from after `after` (or from now on). The client's timeout
    /// bounds each read; the ledger sends a keep-alive every 15 s.
    pub fn follow_tag(&self, patient: &Identity, after: Option<u64>) -> Result<TagStream, LedgerError> {
        let tag: Tag = patient.ledger_tag();
        let target = format!("/v1/tags/{tag}/events");
        let mut request = self.http.get(format!("{}{target}", self.base)).header("accept", "text/event-stream");
        if let Some(after) = after {
            request = request.header("last-event-id", after.to_string());
        }
        let response = self.start(request, Method::GET, &target, None, Some(patient))?;
        Ok(TagStream { response, buffer: Vec::new(), url: self.base.clone() })
    }

    /// `GET /v1/grants/{id}`.
    pub fn grant_status(&self, id: &GrantId) -> Result<GrantStatus, LedgerError> {
        self.get(&format!("/v1/grants/{id}"))
    }

    /// `GET /v1/grants/{id}/entry`, signed by `asker` (an enrolled member), unverified.
    pub fn grant_entry(&self, asker: &Identity, id: &GrantId) -> Result<GrantEntry, LedgerError> {
        self.json(Method::GET, &format!("/v1/grants/{id}/entry"), None, Some(asker))
    }

    /// `GET /v1/members/{key}`, unverified (see [`super::Ledger::member`]).
    /// `GET /v1/grants/{id}/proof`, signed by an enrolled member.
    pub fn grant_proof(&self, asker: &Identity, id: &GrantId) -> Result<GrantProof, LedgerError> {
        self.json(Method::GET, &format!("/v1/grants/{id}/proof"), None, Some(asker))
    }

    pub fn member(&self, key: &SigningPublicKey) -> Result<MemberInfo, LedgerError> {
        self.get(&format!("/v1/members/{key}"))
    }

    /// `GET /v1/patients/{key}`, signed by `asker` (an enrolled member, or the patient).
    pub fn patient(&self, asker: &Identity, key: &SigningPublicKey) -> Result<PatientInfo, LedgerError> {
        self.json(Method::GET, &format!("/v1/patients/{key}"), None, Some(asker))
    }

    /// `GET /v1/recovery/{key}`, signed by `asker` (any key).
    pub fn recovery(&self, asker: &Identity, key: &SigningPublicKey) -> Result<RecoveryInfo, LedgerError> {
        self.json(Method::GET, &format!("/v1/recovery/{key}"), None, Some(asker))
    }

    /// `POST /v1/mailbox/{recipient}?ttl=SECONDS`: leaves sealed bytes for `recipient`.
    pub fn mail_post(
        &self,
        sender: &Identity,
        recipient: &SigningPublicKey,
        ttl_seconds: u64,
        sealed: &[u8],
    ) -> Result<MailPosted, LedgerError> {
        let target = format!("/v1/mailbox/{recipient}?ttl={ttl_seconds}");
        self.json(Method::POST, &target, Some((sealed.to_vec(), "application/octet-stream")), Some(sender))
    }

    /// `GET /v1/mailbox/{key}`: the messages waiting for `owner`.
    pub fn mail_list(&self, owner: &Identity) -> Result<MailList, LedgerError> {
        self.json(Method::GET, &format!("/v1/mailbox/{}", owner.signing_public()), None, Some(owner))
    }

    /// `DELETE /v1/mailbox/{key}/{id}`.
    pub fn mail_delete(&self, owner: &Identity, id: &str) -> Result<(), LedgerError> {
        let safe = !id.is_empty()
            && id.len() <= MAX_MAIL_ID_LEN
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !safe {
            return Err(LedgerError::Malformed {
                target: "a mailbox message id".into(),
                reason: "not a message id".into(),
            });
        }
        self.send(Method::DELETE, &format!("/v1/mailbox/{}/{id}", owner.signing_public()), None, Some(owner))?;
        Ok(())
    }

    /// A raw tile or entry bundle at `target` (see [`crate::audit`]), read with a cap of `limit` bytes.
    pub fn tile(&self, target: &str, limit: usize) -> Result<Vec<u8>, LedgerError> {
        let bytes = self.send(Method::GET, target, None, None)?;
        if bytes.len() > limit {
            return Err(LedgerError::TooLarge { target: target.to_owned(), limit });
        }
        Ok(bytes)
    }
}

enum ReadError {
    TooLarge,
    Io(std::io::Error),
}

/// Reads a body, refusing one over `limit` bytes (by its declared length first, then by reading at most
/// one byte past the limit).
/// The largest event a tag stream may send; the ledger's are a few dozen bytes.
const MAX_STREAM_EVENT_BYTES: usize = 4096;

/// A patient's live stream of entries, from [`LedgerClient::follow_tag`].
pub struct TagStream {
    response: Response,
    buffer: Vec<u8>,
    url: String,
}

impl std::fmt::Debug for TagStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagStream").field("url", &self.url).finish_non_exhaustive()
    }
}

impl TagStream {
    /// Waits for the next entry and returns its index; `Ok(None)` once the ledger ends the stream.
    pub fn next_index(&mut self) -> Result<Option<u64>, LedgerError> {
        loop {
            if let Some(end) = custodia_core::sse::event_end(&self.buffer) {
                let block: Vec<u8> = self.buffer.drain(..end).collect();
                let event = custodia_core::sse::Event::parse(&String::from_utf8_lossy(&block));
                if event.event != "entry" {
                    continue;
                }
                let index = event.id.as_deref().and_then(|id| id.parse::<u64>().ok()).ok_or_else(|| {
                    LedgerError::Malformed {
                        target: "tag events".into(),
                        reason: "an entry event without an index".into(),
                    }
                })?;
                return Ok(Some(index));
            }
            if self.buffer.len() > MAX_STREAM_EVENT_BYTES {
                return Err(LedgerError::TooLarge { target: "tag events".into(), limit: MAX_STREAM_EVENT_BYTES });
            }
            let mut chunk = [0u8; 1024];
            match self.response.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(connection_error(&self.url, &e)),
            }
        }
    }
}

fn read_capped(response: Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::new();
    response.take(limit as u64 + 1).read_to_end(&mut bytes).map_err(ReadError::Io)?;
    if bytes.len() > limit {
        return Err(ReadError::TooLarge);
    }
    Ok(bytes)
}

/// A problem's detail as we print it: one line, printable, not a screenful.
fn clean(text: &str) -> String {
    let mut out: String =
        text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(500).collect::<String>().trim().to_owned();
    if text.chars().count() > 500 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_the_ledger_root_only() {
        assert_eq!(LedgerClient::new("http://127.0.0.1:8080").unwrap().url(), "http://127.0.0.1:8080");
        assert_eq!(LedgerClient::new("http://localhost:8080/").unwrap().url(), "http://localhost:8080");
        for bad in ["", "127.0.0.1:8080", "ftp://x", "http://h/ledger", "http://h/?a=1", "http://u:p@h", "http://"] {
            assert!(matches!(LedgerClient::new(bad), Err(LedgerError::BadUrl { .. })), "{bad}");
        }
    }

    #[test]
    fn details_are_one_short_line() {
        assert_eq!(clean("bad\nthing\u{7}"), "bad thing");
        assert_eq!(clean(&"x".repeat(600)).chars().count(), 501);
    }
}
