//! Which of the hospital's FHIR patients a Custodia patient is: the link a registration desk makes once,
//! after checking the patient's identity, between their wallet's key and their record's Patient id. A
//! grant names the patient by key; the gateway serves only that Patient's records under it.

use std::collections::HashMap;
use std::path::Path;

use custodia_core::SigningPublicKey;
use serde::{Deserialize, Serialize};

use crate::dataset::is_valid_id;

pub const LINKS_FILE: &str = "links.json";
const MAX_LINKS_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LinksError {
    #[error("{path}: {reason}")]
    Bad { path: String, reason: String },
    #[error("{0:?} is not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)")]
    BadId(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkFile {
    links: Vec<Link>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    patient: SigningPublicKey,
    fhir_id: String,
}

/// Patient key → FHIR Patient id.
#[derive(Clone, Debug, Default)]
pub struct Links(HashMap<SigningPublicKey, String>);

impl Links {
    /// Reads `dir/links.json`; no file is no links.
    pub fn load(dir: &Path) -> Result<Self, LinksError> {
        let path = dir.join(LINKS_FILE);
        let bad = |reason: String| LinksError::Bad { path: path.display().to_string(), reason };
        let bytes = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(bad(e.to_string())),
            Ok(m) if m.len() > MAX_LINKS_BYTES => return Err(bad("the file is too large".into())),
            Ok(_) => std::fs::read(&path).map_err(|e| bad(e.to_string()))?,
        };
        let file: LinkFile = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut links = HashMap::new();
        for link in file.links {
            if !is_valid_id(&link.fhir_id) {
                return Err(LinksError::BadId(link.fhir_id));
            }
            links.insert(link.patient, link.fhir_id);
        }
        Ok(Self(links))
    }

    /// Links `patient` to `fhir_id` and writes `dir/links.json` (atomically).
    pub fn link(dir: &Path, patient: SigningPublicKey, fhir_id: &str) -> Result<Self, LinksError> {
        if !is_valid_id(fhir_id) {
            return Err(LinksError::BadId(fhir_id.to_owned()));
        }
        let mut links = Self::load(dir)?;
        links.0.insert(patient, fhir_id.to_owned());
        let mut list: Vec<Link> =
            links.0.iter().map(|(patient, fhir_id)| Link { patient: *patient, fhir_id: fhir_id.clone() }).collect();
        list.sort_by(|a, b| a.fhir_id.cmp(&b.fhir_id).then(a.patient.to_string().cmp(&b.patient.to_string())));
        let json = serde_json::to_vec_pretty(&LinkFile { links: list }).unwrap_or_default();
        let path = dir.join(LINKS_FILE);
        let bad = |e: std::io::Error| LinksError::Bad { path: path.display().to_string(), reason: e.to_string() };
        let tmp = dir.join(format!(".{LINKS_FILE}.tmp"));
        std::fs::write(&tmp, json).map_err(bad)?;
        std::fs::rename(&tmp, &path).map_err(bad)?;
        Ok(links)
    }

    pub fn insert(&mut self, patient: SigningPublicKey, fhir_id: String) {
        self.0.insert(patient, fhir_id);
    }

    pub fn fhir_id(&self, patient: &SigningPublicKey) -> Option<&str> {
        self.0.get(patient).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
