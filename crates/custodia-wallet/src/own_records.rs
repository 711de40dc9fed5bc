//! The patient's own records at a hospital's gateway, and what a grant would release of them.
//!
//! The patient reads their records through the gateway like anyone else (signed by their own key, logged
//! in their log), and gets every record of theirs. A preview runs the same policy the gateway runs
//! (`policy::check`) over those records for a grant not yet given, so it shows exactly what the grantee
//! would receive there, and what stays hidden and why.

use custodia_core::Identity;
use custodia_core::grant::VerifiedGrant;
use custodia_core::policy::{self, Decision, ReadAttempt};
use custodia_core::scope::Interaction;
use custodia_core::time::Timestamp;
use serde_json::{Value, json};

use crate::fhir_client::{FhirClientError, GatewayClient};

/// Records read per type: the gateway's largest search page.
pub const MAX_PER_TYPE: usize = 200;
/// Types read at most, whatever a CapabilityStatement lists.
const MAX_TYPES: usize = 64;

/// The resource types the gateway offers, from its CapabilityStatement.
pub fn gateway_types(client: &GatewayClient) -> Result<Vec<String>, FhirClientError> {
    let reply = client.metadata()?;
    if let Some(refusal) = reply.refusal() {
        return Err(FhirClientError::Refusal(refusal));
    }
    let types = reply
        .body
        .pointer("/rest/0/resource")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(|t| t.get("type")?.as_str().map(str::to_owned)).take(MAX_TYPES).collect())
        .unwrap_or_default();
    Ok(types)
}

/// Every record of the patient's of `types` at the gateway, read as the patient.
pub fn fetch_own(
    client: &GatewayClient,
    patient: &Identity,
    types: &[String],
    now: Timestamp,
) -> Result<Vec<Value>, FhirClientError> {
    let mut records = Vec::new();
    for resource_type in types {
        let reply = client.get_own(&format!("/fhir/{resource_type}?_count={MAX_PER_TYPE}"), patient, now)?;
        if let Some(refusal) = reply.refusal() {
            return Err(FhirClientError::Refusal(refusal));
        }
        let entries = reply.body.get("entry").and_then(Value::as_array).cloned().unwrap_or_default();
        records.extend(entries.into_iter().filter_map(|e| e.get("resource").cloned()));
    }
    Ok(records)
}

/// The records as one FHIR R4 `collection` Bundle, for download.
pub fn bundle(records: &[Value], now: Timestamp) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": now.to_string(),
        "total": records.len(),
        "entry": records.iter().map(|r| {
            let full_url = format!(
                "urn:custodia:{}/{}",
                r.get("resourceType").and_then(Value::as_str).unwrap_or_default(),
                r.get("id").and_then(Value::as_str).unwrap_or_default()
            );
            json!({"fullUrl": full_url, "resource": r})
        }).collect::<Vec<_>>(),
    })
}

/// What a grant would release of the records, and what it would not, with the policy's reason.
#[derive(Debug, Default)]
pub struct Preview {
    pub released: Vec<Value>,
    pub hidden: Vec<(Value, String)>,
}

/// Runs the gateway's policy over `records` for `grant`, as a search under it at `now` would.
pub fn preview(grant: &VerifiedGrant, records: &[Value], now: Timestamp) -> Preview {
    let attempt = ReadAttempt { interaction: Interaction::Search, purpose: grant.purpose, at: now, reads_so_far: 0 };
    let mut out = Preview::default();
    for record in records {
        match policy::check(grant, record, &attempt) {
            Ok(Decision::Allow) => out.released.push(record.clone()),
            Ok(Decision::Deny(d)) => out.hidden.push((record.clone(), d.to_string())),
            Err(e) => out.hidden.push((record.clone(), e.to_string())),
        }
    }
    out
}

/// "AllergyIntolerance/a1" for a record.
pub fn reference(record: &Value) -> String {
    let text = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or_default();
    format!("{}/{}", text("resourceType"), text("id"))
}
