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

/// The links a running gateway serves. Watching a folder, it re-reads `links.json` when the file changed,
/// checked at most once a second and only when a grant's patient is not linked, so a registration desk's
/// new link needs no restart.
#[derive(Debug)]
pub struct LiveLinks {
    current: std::sync::RwLock<Links>,
    dir: Option<std::path::PathBuf>,
    checked: std::sync::Mutex<(Option<std::time::Instant>, Option<std::time::SystemTime>)>,
}

impl LiveLinks {
    /// These links, never re-read.
    pub fn fixed(links: Links) -> Self {
        Self { current: std::sync::RwLock::new(links), dir: None, checked: std::sync::Mutex::new((None, None)) }
    }

    /// The links in `dir/links.json`, re-read when the file changes.
    pub fn watching(dir: &Path) -> Result<Self, LinksError> {
        let modified = std::fs::metadata(dir.join(LINKS_FILE)).and_then(|m| m.modified()).ok();
        Ok(Self {
            current: std::sync::RwLock::new(Links::load(dir)?),
            dir: Some(dir.to_owned()),
            checked: std::sync::Mutex::new((Some(std::time::Instant::now()), modified)),
        })
    }

    pub fn fhir_id(&self, patient: &SigningPublicKey) -> Option<String> {
        let linked = |links: &std::sync::RwLock<Links>| links.read().ok()?.fhir_id(patient).map(str::to_owned);
        if let Some(id) = linked(&self.current) {
            return Some(id);
        }
        self.reload_if_changed();
        linked(&self.current)
    }

    fn reload_if_changed(&self) {
        let Some(dir) = &self.dir else { return };
        let Ok(mut checked) = self.checked.lock() else { return };
        if checked.0.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1)) {
            return;
        }
        checked.0 = Some(std::time::Instant::now());
        let modified = std::fs::metadata(dir.join(LINKS_FILE)).and_then(|m| m.modified()).ok();
        if modified == checked.1 {
            return;
        }
        match Links::load(dir) {
            Ok(links) => {
                if let Ok(mut current) = self.current.write() {
                    *current = links;
                }
                checked.1 = modified;
            }
            // A file caught half-written, or edited badly: keep serving the links already loaded.
            Err(e) => {
                custodia_net::log::warn("custodia-gateway", format_args!("{e}; keeping the links already loaded"))
            }
        }
    }

    pub fn len(&self) -> usize {
        self.current.read().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
