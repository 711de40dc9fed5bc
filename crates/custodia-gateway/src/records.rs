//! Where the records come from: the gateway's own dataset, or an upstream FHIR R4 server it fronts
//! (proxy mode). Either way the gateway sees whole resources before deciding, so the same rules apply.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::dataset::{Dataset, patient_at, patient_of};
use crate::fhir;

/// The most resources one search takes from the source, before the grant's filter.
pub const MAX_SEARCH_RESOURCES: usize = 1000;
/// The largest upstream response the gateway reads.
const MAX_UPSTREAM_BYTES: usize = 32 * 1024 * 1024;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(20);

/// The types a proxy offers: those a patient's plain-word categories grant.
const UPSTREAM_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "Condition",
    "DiagnosticReport",
    "DocumentReference",
    "ImagingStudy",
    "Immunization",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Patient",
    "Procedure",
];

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("the upstream FHIR server could not be reached: {0}")]
    Unreachable(String),
    #[error("not an upstream FHIR server address: {0}")]
    BadUrl(String),
    #[error("the upstream FHIR server answered {status}")]
    Status { status: u16 },
    #[error("the upstream FHIR server sent something that is not FHIR: {0}")]
    NotFhir(String),
}

/// A search as the source is asked it: always for one patient.
#[derive(Clone, Debug, Default)]
pub struct Search {
    pub category: Option<String>,
    pub code: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Records {
    Local(Arc<Dataset>),
    Upstream { base: String, client: reqwest::Client },
}

impl Records {
    /// The FHIR server at `base`: `https://` (verified with the process's trust, `--ca-file` included), or
    /// `http://` on loopback only.
    pub fn upstream(base: &str) -> Result<Self, RecordsError> {
        let url = reqwest::Url::parse(base).map_err(|_| RecordsError::BadUrl(format!("{base:?} is not a URL")))?;
        custodia_net::client::check_url(&url).map_err(|e| RecordsError::BadUrl(format!("{base}: {e}")))?;
        let trust = custodia_net::Trust::global().map_err(|e| RecordsError::Unreachable(e.to_string()))?;
        let client = trust
            .async_client()
            .timeout(UPSTREAM_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RecordsError::Unreachable(custodia_net::client::explain(&e)))?;
        Ok(Records::Upstream { base: base.trim_end_matches('/').to_owned(), client })
    }

    /// The resource types the source serves (for the CapabilityStatement).
    pub fn resource_types(&self) -> Vec<String> {
        match self {
            Records::Local(d) => d.resource_types().into_iter().map(str::to_owned).collect(),
            Records::Upstream { .. } => UPSTREAM_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    /// One resource by type and id, if it exists.
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Option<Arc<Value>>, RecordsError> {
        match self {
            Records::Local(d) => Ok(d.read(resource_type, id).cloned()),
            Records::Upstream { base, client } => {
                match get_json(client, &format!("{base}/{resource_type}/{id}")).await? {
                    None => Ok(None),
                    Some(v) => {
                        let same = v.get("resourceType").and_then(Value::as_str) == Some(resource_type)
                            && v.get("id").and_then(Value::as_str) == Some(id);
                        if !same {
                            return Err(RecordsError::NotFhir(format!("asked for {resource_type}/{id}, got another")));
                        }
                        Ok(Some(Arc::new(v)))
                    }
                }
            }
        }
    }

    /// The Patient id `resource` belongs to, absolute references to this source's own Patients included.
    pub fn patient_of<'a>(&self, resource: &'a Value) -> Option<&'a str> {
        match self {
            Records::Local(_) => patient_of(resource),
            Records::Upstream { base, .. } => patient_at(resource, Some(base)),
        }
    }

    /// The ids of the Patients carrying the identifier `system|value` (any system when `None`).
    pub async fn patients_with_identifier(
        &self,
        system: Option<&str>,
        value: &str,
    ) -> Result<Vec<String>, RecordsError> {
        let carries = |r: &Value| fhir::has_identifier(r, system, value);
        let ids = |found: &mut dyn Iterator<Item = &Value>| -> Vec<String> {
            let mut ids: Vec<String> =
                found.filter(|r| carries(r)).filter_map(|r| patient_of(r).map(str::to_owned)).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        match self {
            Records::Local(d) => Ok(ids(&mut d.search("Patient", None).into_iter().map(|r| r.as_ref()))),
            Records::Upstream { base, client } => {
                let mut url = reqwest::Url::parse(&format!("{base}/Patient"))
                    .map_err(|e| RecordsError::Unreachable(e.to_string()))?;
                let token = match system {
                    Some(system) => format!("{}|{}", fhir::escape_token(system), fhir::escape_token(value)),
                    None => fhir::escape_token(value),
                };
                url.query_pairs_mut().append_pair("identifier", &token);
                let bundle = get_json(client, url.as_str()).await?.unwrap_or(Value::Null);
                if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
                    return Err(RecordsError::NotFhir("a search did not return a Bundle".into()));
                }
                let entries = bundle.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                // Checked here too: only Patients that do carry the identifier count.
                Ok(ids(&mut entries
                    .iter()
                    .filter_map(|e| e.get("resource"))
                    .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient"))))
            }
        }
    }

    /// Every resource of `resource_type` of `patient` that the search's parameters match, at most
    /// [`MAX_SEARCH_RESOURCES`].
    pub async fn search(
        &self,
        resource_type: &str,
        patient: &str,
        search: &Search,
    ) -> Result<Vec<Arc<Value>>, RecordsError> {
        let matches = |r: &Value| {
            search.category.as_deref().is_none_or(|c| fhir::matches_token(r, "category", c))
                && search.code.as_deref().is_none_or(|c| fhir::matches_token(r, "code", c))
        };
        match self {
            Records::Local(d) => Ok(d
                .search(resource_type, Some(patient))
                .into_iter()
                .filter(|r| matches(r))
                .take(MAX_SEARCH_RESOURCES)
                .cloned()
                .collect()),
            Records::Upstream { base, client } => {
                let param = if resource_type == "Patient" { "_id" } else { "patient" };
                let mut url = reqwest::Url::parse(&format!("{base}/{resource_type}"))
                    .map_err(|e| RecordsError::Unreachable(e.to_string()))?;
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair(param, patient);
                    if let Some(c) = &search.category {
                        q.append_pair("category", c);
                    }
                    if let Some(c) = &search.code {
                        q.append_pair("code", c);
                    }
                    q.append_pair("_count", &MAX_SEARCH_RESOURCES.to_string());
                }
                let bundle = get_json(client, url.as_str()).await?.unwrap_or(Value::Null);
                if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
                    return Err(RecordsError::NotFhir("a search did not return a Bundle".into()));
                }
                let entries = bundle.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                // The upstream is trusted to filter, and checked: only this patient's resources of this
                // type that match pass, whatever it sent.
                Ok(entries
                    .iter()
                    .filter_map(|e| e.get("resource"))
                    .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some(resource_type))
                    .filter(|r| patient_at(r, Some(base)) == Some(patient))
                    .filter(|r| matches(r))
                    .take(MAX_SEARCH_RESOURCES)
                    .map(|r| Arc::new(r.clone()))
                    .collect())
            }
        }
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Option<Value>, RecordsError> {
    let mut response = client
        .get(url)
        .header("accept", fhir::FHIR_JSON)
        .send()
        .await
        .map_err(|e| RecordsError::Unreachable(custodia_net::client::explain(&e)))?;
    let status = response.status().as_u16();
    if status == 404 || status == 410 {
        return Ok(None);
    }
    if status != 200 {
        return Err(RecordsError::Status { status });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| RecordsError::Unreachable(e.to_string()))? {
        if body.len() + chunk.len() > MAX_UPSTREAM_BYTES {
            return Err(RecordsError::NotFhir(format!("a response over {} MiB", MAX_UPSTREAM_BYTES >> 20)));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map(Some).map_err(|e| RecordsError::NotFhir(e.to_string()))
}
