//! A client for a record gateway. A clinician's request carries the grant and is signed by the
//! grantee's key over its method, full URL, time, nonce and the grant; with an emergency card, the card's
//! key signs the same request as well. A patient's request for their own records carries no grant and is
//! signed by the patient's key, bound to the self-access digest instead.

use custodia_core::entry::{EntryNonce, statement_digest};
use custodia_core::grant::VerifiedGrant;
use custodia_core::reqsig;
use custodia_core::time::Timestamp;
use custodia_core::{Identity, purpose::PurposeOfUse};
use serde_json::Value;

use crate::ledger::{LedgerError, http_client, normalise_url};

/// The largest answer read from a gateway.
pub const MAX_FHIR_RESPONSE: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FhirClientError {
    #[error("the gateway at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    /// The gateway's certificate was refused, or it spoke no TLS.
    #[error("refused the connection to the gateway at {url}: {reason}")]
    Refused { url: String, reason: String },
    #[error("the gateway answered {status} with something that is not FHIR JSON")]
    NotFhir { status: u16 },
    #[error("the gateway's answer is larger than {} MiB", MAX_FHIR_RESPONSE >> 20)]
    TooLarge,
    #[error(transparent)]
    BadUrl(#[from] LedgerError),
    #[error("the gateway said no: {0}")]
    Refusal(String),
}

/// A gateway's answer: the HTTP status and the FHIR resource (a resource, a Bundle or an OperationOutcome).
#[derive(Clone, Debug)]
pub struct FhirReply {
    pub status: u16,
    pub body: Value,
}

impl FhirReply {
    /// The refusal's text, from the OperationOutcome, when the gateway said no.
    pub fn refusal(&self) -> Option<String> {
        if (200..300).contains(&self.status) {
            return None;
        }
        let issue = self.body.pointer("/issue/0");
        let text = issue
            .and_then(|i| i.get("diagnostics"))
            .and_then(Value::as_str)
            .or_else(|| issue.and_then(|i| i.get("code")).and_then(Value::as_str))
            .unwrap_or("refused");
        Some(format!("{} ({})", text, self.status))
    }
}

#[derive(Debug)]
pub struct GatewayClient {
    base: String,
    http: reqwest::blocking::Client,
}

impl GatewayClient {
    /// `base` is the gateway's address as it publishes it (`https://records.example.org`), without `/fhir`.
    pub fn new(base: &str) -> Result<Self, FhirClientError> {
        let base = normalise_url(base)?;
        let http = http_client(&base)?;
        Ok(Self { base, http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET {base}{path_and_query}` (`/fhir/Observation?category=laboratory`) under `grant`, signed by
    /// `reader` and, for an emergency card's grant, by the card's key, with the reader's reason for
    /// opening the card (a code of `EMERGENCY_REASONS`). `purpose` defaults to the grant's.
    pub fn get(
        &self,
        path_and_query: &str,
        grant: &VerifiedGrant,
        reader: &Identity,
        card: Option<(&Identity, &str)>,
        purpose: Option<PurposeOfUse>,
        now: Timestamp,
    ) -> Result<FhirReply, FhirClientError> {
        let url = format!("{}{path_and_query}", self.base);
        let binding = statement_digest(grant.envelope());
        let nonce = EntryNonce::generate();
        let mut request = self
            .http
            .get(&url)
            .header("accept", "application/fhir+json")
            .header("custodia-grant", data_encoding::BASE64URL_NOPAD.encode(grant.to_compact_json().as_bytes()))
            .header(reqsig::HEADER, reqsig::sign_bound(reader, "GET", &url, &binding, now, &nonce));
        if let Some((card, reason)) = card {
            request = request
                .header("custodia-card-signature", reqsig::sign_bound(card, "GET", &url, &binding, now, &nonce))
                .header("custodia-emergency-reason", reason);
        }
        if let Some(p) = purpose {
            request = request.header("custodia-purpose", p.code());
        }
        self.send(request)
    }

    /// `GET {base}{path_and_query}` of the patient's own records: no grant, signed by the patient's
    /// current key. The gateway answers with every record of theirs and logs the read like any other.
    pub fn get_own(
        &self,
        path_and_query: &str,
        patient: &Identity,
        now: Timestamp,
    ) -> Result<FhirReply, FhirClientError> {
        let url = format!("{}{path_and_query}", self.base);
        let signature =
            reqsig::sign_bound(patient, "GET", &url, &reqsig::self_access_binding(), now, &EntryNonce::generate());
        let request = self
            .http
            .get(&url)
            .header("accept", "application/fhir+json")
            .header("custodia-self-access", "patient")
            .header(reqsig::HEADER, signature);
        self.send(request)
    }

    /// `GET {base}/fhir/metadata`: the gateway's CapabilityStatement, which anyone may read.
    pub fn metadata(&self) -> Result<FhirReply, FhirClientError> {
        self.send(self.http.get(format!("{}/fhir/metadata", self.base)).header("accept", "application/fhir+json"))
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> Result<FhirReply, FhirClientError> {
        let unreachable = |e: reqwest::Error| {
            let (url, reason) = (self.base.clone(), custodia_net::client::explain(&e));
            if custodia_net::client::is_certificate_refusal(&e) {
                FhirClientError::Refused { url, reason }
            } else {
                FhirClientError::Unreachable { url, reason }
            }
        };
        let response = request.send().map_err(unreachable)?;
        let status = response.status().as_u16();
        if response.content_length().is_some_and(|n| n > MAX_FHIR_RESPONSE as u64) {
            return Err(FhirClientError::TooLarge);
        }
        let bytes = response.bytes().map_err(unreachable)?;
        if bytes.len() > MAX_FHIR_RESPONSE {
            return Err(FhirClientError::TooLarge);
        }
        let body = serde_json::from_slice(&bytes).map_err(|_| FhirClientError::NotFhir { status })?;
        Ok(FhirReply { status, body })
    }
}
