//! Which of the hospital's FHIR patients a Custodia patient is: the link a registration desk makes once,
//! after checking the patient's identity, between their wallet's key and their record: its Patient id, or
//! the hospital's own identifier for them (a medical record number), which the gateway looks up with
//! `Patient?identifier=`. A grant names the patient by key; the gateway serves only that Patient's records
//! under it. A link made with a key the patient later rotated away (after a recovery) still holds: the
//! gateway follows the patient's rotations on the ledger back to the linked key.

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
    #[error("{0}")]
    BadIdentifier(String),
}

/// The longest identifier value or system accepted.
const MAX_IDENTIFIER_CHARS: usize = 256;

/// Where a linked patient's records are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The Patient resource's id.
    FhirId(String),
    /// The hospital's identifier for the patient (`Patient.identifier`), with its system if given.
    Identifier { system: Option<String>, value: String },
}

impl Target {
    /// A Patient id, checked.
    pub fn fhir_id(id: &str) -> Result<Self, LinksError> {
        if !is_valid_id(id) {
            return Err(LinksError::BadId(id.to_owned()));
        }
        Ok(Self::FhirId(id.to_owned()))
    }

    /// A record number and its system (an absolute URI), checked.
    pub fn identifier(system: Option<&str>, value: &str) -> Result<Self, LinksError> {
        let bad = |why: String| Err(LinksError::BadIdentifier(why));
        if value.trim().is_empty()
            || value.chars().count() > MAX_IDENTIFIER_CHARS
            || value.chars().any(char::is_control)
        {
            return bad(format!("{value:?} is not a record number (1 to {MAX_IDENTIFIER_CHARS} printable characters)"));
        }
        if let Some(system) = system {
            let uri = system.split_once(':').is_some_and(|(scheme, rest)| {
                !rest.is_empty() && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            });
            if !uri
                || system.len() > MAX_IDENTIFIER_CHARS
                || system.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return bad(format!(
                    "{system:?} is not an identifier system (an absolute URI, such as https://hospital.example/mrn)"
                ));
            }
        }
        Ok(Self::Identifier { system: system.map(str::to_owned), value: value.to_owned() })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::FhirId(id) => write!(f, "Patient/{id}"),
            Target::Identifier { system: Some(system), value } => {
                write!(f, "the patient with identifier {system}|{value}")
            }
            Target::Identifier { system: None, value } => write!(f, "the patient with identifier {value}"),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkFile {
    links: Vec<Link>,
}

/// One link as the file keeps it: the key and either the Patient id or the record number.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    patient: SigningPublicKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fhir_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mrn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mrn_system: Option<String>,
}

impl Link {
    fn target(&self) -> Result<Target, LinksError> {
        match (&self.fhir_id, &self.mrn, &self.mrn_system) {
            (Some(id), None, None) => Target::fhir_id(id),
            (None, Some(value), system) => Target::identifier(system.as_deref(), value),
            _ => Err(LinksError::BadIdentifier(format!(
                "the link of {} must name either fhir_id or mrn (with mrn_system if known)",
                self.patient
            ))),
        }
    }

    fn new(patient: SigningPublicKey, target: &Target) -> Self {
        match target {
            Target::FhirId(id) => Self { patient, fhir_id: Some(id.clone()), mrn: None, mrn_system: None },
            Target::Identifier { system, value } => {
                Self { patient, fhir_id: None, mrn: Some(value.clone()), mrn_system: system.clone() }
            }
        }
    }
}

/// Patient key → where their records are.
#[derive(Clone, Debug, Default)]
pub struct Links(HashMap<SigningPublicKey, Target>);

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
            links.insert(link.patient, link.target()?);
        }
        Ok(Self(links))
    }

    /// Links `patient` to `target` and writes `dir/links.json` (atomically, synced).
    pub fn link(dir: &Path, patient: SigningPublicKey, target: &Target) -> Result<Self, LinksError> {
        let mut links = Self::load(dir)?;
        links.0.insert(patient, target.clone());
        let mut list: Vec<Link> = links.0.iter().map(|(patient, target)| Link::new(*patient, target)).collect();
        list.sort_by_cached_key(|l| l.patient.to_string());
        let json = serde_json::to_vec_pretty(&LinkFile { links: list }).unwrap_or_default();
        let path = dir.join(LINKS_FILE);
        let bad = |e: std::io::Error| LinksError::Bad { path: path.display().to_string(), reason: e.to_string() };
        let tmp = dir.join(format!(".{LINKS_FILE}.tmp"));
        let mut file = std::fs::File::create(&tmp).map_err(bad)?;
        std::io::Write::write_all(&mut file, &json).and_then(|()| file.sync_all()).map_err(bad)?;
        std::fs::rename(&tmp, &path).map_err(bad)?;
        Ok(links)
    }

    pub fn insert(&mut self, patient: SigningPublicKey, target: Target) {
        self.0.insert(patient, target);
    }

    pub fn target(&self, patient: &SigningPublicKey) -> Option<&Target> {
        self.0.get(patient)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The links a running gateway serves. Watching a folder, it re-reads `links.json` when the file changed,
/// checked at most once a second, so a registration desk's new or corrected link needs no restart.
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

    pub fn target(&self, patient: &SigningPublicKey) -> Option<Target> {
        self.reload_if_changed();
        self.current.read().ok()?.target(patient).cloned()
    }

    fn reload_if_changed(&self) {
        let Some(dir) = &self.dir else { return };
        // One request a second looks; the others go on with the links loaded.
        let Ok(mut checked) = self.checked.try_lock() else { return };
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
