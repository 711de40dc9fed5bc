//! Where the records come from: the gateway's own dataset, or an upstream FHIR R4 server it fronts
//! (proxy mode). Either way the gateway sees whole resources before deciding, so the same rules apply.

use std::sync::Arc;

use serde_json::Value;

use crate::dataset::{Dataset, patient_at, patient_of};
use crate::fhir;
use crate::upstream::{Auth, Upstream};

/// The most resources one search takes from the source, before the grant's filter.
pub const MAX_SEARCH_RESOURCES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("the upstream FHIR server could not be reached: {0}")]
    Unreachable(String),
    #[error("the upstream FHIR server did not answer in time")]
    Timeout,
    #[error("not an upstream FHIR server address: {0}")]
    BadUrl(String),
    #[error("the upstream FHIR server answered {status}")]
    Status { status: u16 },
    #[error("the upstream FHIR server sent something that is not FHIR: {0}")]
    NotFhir(String),
    #[error("the gateway could not authenticate to the upstream FHIR server: {0}")]
    Auth(String),
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
    Upstream(Arc<Upstream>),
}

impl Records {
    /// The FHIR server at `base` (see [`Upstream::new`]), reached with `auth`.
    pub fn upstream(base: &str, auth: Auth) -> Result<Self, RecordsError> {
        Ok(Records::Upstream(Arc::new(Upstream::new(base, auth)?)))
    }

    /// Readies the source before the gateway serves: an upstream's CapabilityStatement is read (and with
    /// SMART a first token fetched), so bad credentials or a wrong address stop the start, said plainly.
    pub async fn prepare(&self) -> Result<(), RecordsError> {
        match self {
            Records::Local(_) => Ok(()),
            Records::Upstream(upstream) => upstream.connect().await.map(drop),
        }
    }

    /// The resource types the source serves (for the CapabilityStatement): an upstream's own list.
    pub fn resource_types(&self) -> Vec<String> {
        match self {
            Records::Local(d) => d.resource_types().into_iter().map(str::to_owned).collect(),
            Records::Upstream(upstream) => upstream.resource_types(),
        }
    }

    /// Whether the source serves `resource_type` at all.
    pub fn serves(&self, resource_type: &str) -> bool {
        match self {
            Records::Local(_) => true,
            Records::Upstream(upstream) => upstream.serves(resource_type),
        }
    }

    /// One resource by type and id, if it exists.
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Option<Arc<Value>>, RecordsError> {
        match self {
            Records::Local(d) => Ok(d.read(resource_type, id).cloned()),
            Records::Upstream(upstream) => {
                // An id of dots would walk the URL up a level.
                if !crate::dataset::is_valid_id(id) || id.bytes().all(|b| b == b'.') {
                    return Ok(None);
                }
                match upstream.get(&upstream.url(&format!("{resource_type}/{id}"))?).await? {
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
            Records::Upstream(upstream) => patient_at(resource, Some(upstream.base())),
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
            Records::Upstream(upstream) => {
                let mut url = upstream.url("Patient")?;
                let token = match system {
                    Some(system) => format!("{}|{}", fhir::escape_token(system), fhir::escape_token(value)),
                    None => fhir::escape_token(value),
                };
                url.query_pairs_mut().append_pair("identifier", &token);
                // Checked here too: only Patients that do carry the identifier count.
                let found = upstream.search(url, 10).await?;
                Ok(ids(&mut found.iter().filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient"))))
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
            Records::Upstream(upstream) => {
                let param = if resource_type == "Patient" { "_id" } else { "patient" };
                let mut url = upstream.url(resource_type)?;
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair(param, patient);
                    if let Some(c) = &search.category {
                        q.append_pair("category", c);
                    }
                    if let Some(c) = &search.code {
                        q.append_pair("code", c);
                    }
                }
                let found = upstream.search(url, MAX_SEARCH_RESOURCES).await?;
                // The upstream is trusted to filter, and checked: only this patient's resources of this
                // type that match pass, whatever it sent.
                Ok(found
                    .into_iter()
                    .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some(resource_type))
                    .filter(|r| self.patient_of(r) == Some(patient))
                    .filter(|r| matches(r))
                    .map(Arc::new)
                    .collect())
            }
        }
    }
}
