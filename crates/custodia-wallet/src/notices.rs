//! What the patient is told, and when.
//!
//! Each new entry in the patient's log becomes a [`Notice`]: a kind (an emergency-card read, a read of
//! records marked sensitive, a refused attempt, a reader seen for the first time, a routine read), a
//! sentence in plain words, and a [`Delivery`] the patient chose for that kind: at once, in a daily
//! summary, or only in the log. Every entry stays in the log whatever the choice. Recovery requests
//! always interrupt: someone may be taking the wallet over.
//!
//! The choices are not secret and are kept beside the vault in `notices.json`, so they can be changed
//! while a watching process holds the wallet, and take effect at its next notice.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use custodia_core::SigningPublicKey;
use custodia_core::entry::{AccessEvent, AccessedResource, Outcome};
use serde::{Deserialize, Serialize};

use crate::wallet::AccessRecord;

/// The preferences file in the wallet's folder.
pub const PREFS_FILE: &str = "notices.json";
/// A preferences file larger than this is not one this program wrote.
const MAX_PREFS_BYTES: u64 = 16 * 1024;

/// What kind of entry a notice is about; the patient chooses a [`Delivery`] for each but `Recovery`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// A read through the patient's emergency card.
    BreakGlass,
    /// A read of records marked sensitive (mental health, sexual health, substance use...).
    Sensitive,
    /// An attempt the gateway refused.
    Refused,
    /// A read by someone who had not read the patient's records before.
    NewReader,
    /// Any other read, and a withdrawn permission.
    Routine,
    /// A new device asked the patient's guardians to recover the wallet.
    Recovery,
}

impl NoticeKind {
    /// The kinds the patient may choose a delivery for.
    pub const CHOOSABLE: [NoticeKind; 5] =
        [Self::BreakGlass, Self::Sensitive, Self::Refused, Self::NewReader, Self::Routine];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BreakGlass => "break-glass",
            Self::Sensitive => "sensitive",
            Self::Refused => "refused",
            Self::NewReader => "new-reader",
            Self::Routine => "routine",
            Self::Recovery => "recovery",
        }
    }

    /// How a settings screen names the kind.
    pub fn words(self) -> &'static str {
        match self {
            Self::BreakGlass => "Someone used your emergency card",
            Self::Sensitive => "Someone read records marked sensitive",
            Self::Refused => "Someone was refused your records",
            Self::NewReader => "Someone read your records for the first time",
            Self::Routine => "Other reads, and permissions withdrawn",
            Self::Recovery => "A new device asked to recover your wallet",
        }
    }
}

impl std::str::FromStr for NoticeKind {
    type Err = PrefsError;

    fn from_str(s: &str) -> Result<Self, PrefsError> {
        Self::CHOOSABLE.into_iter().find(|k| k.as_str() == s).ok_or_else(|| PrefsError::UnknownKind(s.to_owned()))
    }
}

/// When a notice of a kind reaches the patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// At once: a notification.
    Instant,
    /// In the daily summary.
    Summary,
    /// Never as a notification; it is in the log.
    Never,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instant => "instant",
            Self::Summary => "summary",
            Self::Never => "never",
        }
    }
}

impl std::str::FromStr for Delivery {
    type Err = PrefsError;

    fn from_str(s: &str) -> Result<Self, PrefsError> {
        match s {
            "instant" => Ok(Self::Instant),
            "summary" => Ok(Self::Summary),
            "never" => Ok(Self::Never),
            other => Err(PrefsError::UnknownDelivery(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrefsError {
    #[error("unknown kind of notice {0:?}: choose break-glass, sensitive, refused, new-reader or routine")]
    UnknownKind(String),
    #[error("unknown delivery {0:?}: choose instant, summary or never")]
    UnknownDelivery(String),
    #[error("write a setting as KIND=DELIVERY, e.g. routine=instant (got {0:?})")]
    Malformed(String),
    #[error("the notice preferences {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// The patient's choice of delivery per kind; saved as `{"routine": "summary", ...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticePrefs {
    chosen: BTreeMap<NoticeKind, Delivery>,
}

impl Default for NoticePrefs {
    /// Instant for emergency-card reads, sensitive records, refusals and new readers; the rest in the
    /// daily summary.
    fn default() -> Self {
        let chosen = NoticeKind::CHOOSABLE
            .into_iter()
            .map(|k| (k, if k == NoticeKind::Routine { Delivery::Summary } else { Delivery::Instant }))
            .collect();
        Self { chosen }
    }
}

impl NoticePrefs {
    pub fn delivery(&self, kind: NoticeKind) -> Delivery {
        if kind == NoticeKind::Recovery {
            return Delivery::Instant;
        }
        self.chosen.get(&kind).copied().unwrap_or_else(|| Self::default().delivery(kind))
    }

    /// Applies one `KIND=DELIVERY` setting.
    pub fn set(&mut self, setting: &str) -> Result<(), PrefsError> {
        let (kind, delivery) = setting.split_once('=').ok_or_else(|| PrefsError::Malformed(setting.to_owned()))?;
        self.chosen.insert(kind.trim().parse()?, delivery.trim().parse()?);
        Ok(())
    }

    /// Every choosable kind with its delivery, in a fixed order.
    pub fn all(&self) -> Vec<(NoticeKind, Delivery)> {
        NoticeKind::CHOOSABLE.into_iter().map(|k| (k, self.delivery(k))).collect()
    }

    /// The preferences in the wallet folder `dir`, or the defaults if none were saved.
    pub fn load(dir: &Path) -> Result<Self, PrefsError> {
        let path = dir.join(PREFS_FILE);
        let file_err = |reason: String| PrefsError::File { path: path.clone(), reason };
        let text = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(file_err(e.to_string())),
            Ok(m) if m.len() > MAX_PREFS_BYTES => return Err(file_err("it is too large".into())),
            Ok(_) => std::fs::read_to_string(&path).map_err(|e| file_err(e.to_string()))?,
        };
        let saved: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| file_err(e.to_string()))?;
        let mut prefs = Self::default();
        for (kind, delivery) in saved {
            prefs.chosen.insert(
                kind.parse().map_err(|e: PrefsError| file_err(e.to_string()))?,
                delivery.parse().map_err(|e: PrefsError| file_err(e.to_string()))?,
            );
        }
        Ok(prefs)
    }

    /// Saves the preferences in `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<(), PrefsError> {
        let path = dir.join(PREFS_FILE);
        let saved: BTreeMap<&str, &str> = self.all().into_iter().map(|(k, d)| (k.as_str(), d.as_str())).collect();
        let text = serde_json::to_string_pretty(&saved)
            .map_err(|e| PrefsError::File { path: path.clone(), reason: e.to_string() })?;
        crate::vault::write_atomic(&path, text.as_bytes())
            .map_err(|e| PrefsError::File { path: path.clone(), reason: e.to_string() })
    }
}

/// One thing to tell the patient.
#[derive(Clone, Debug, Serialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub delivery: Delivery,
    /// The ledger entry it is about.
    pub index: u64,
    /// When it happened, as the gateway or ledger recorded it (RFC 3339).
    pub at: String,
    /// The sentence the patient reads.
    pub text: String,
}

/// The kind of an access event, the most pressing first: `known_reader` says whether this reader had
/// read the patient's records before.
pub fn classify(event: &AccessEvent, known_reader: bool) -> NoticeKind {
    let own = event.reader == event.patient;
    if own && event.outcome == Outcome::Allowed {
        // The patient's own read, from their own wallet.
        NoticeKind::Routine
    } else if event.break_glass {
        NoticeKind::BreakGlass
    } else if event.resources.iter().any(|r| !r.labels.is_empty()) {
        NoticeKind::Sensitive
    } else if event.outcome == Outcome::Denied {
        NoticeKind::Refused
    } else if !known_reader {
        NoticeKind::NewReader
    } else {
        NoticeKind::Routine
    }
}

/// The notices for the access events `new` (oldest first) that a sync added to `all` (every event the
/// wallet now holds): a reader is new unless an allowed read of theirs came before.
pub fn access_notices(all: &[AccessRecord], new: &[AccessRecord], prefs: &NoticePrefs) -> Vec<Notice> {
    // A watch syncs several times a second while it waits for a checkpoint; most syncs bring nothing.
    if new.is_empty() {
        return Vec::new();
    }
    let fresh: HashSet<u64> = new.iter().map(|a| a.index).collect();
    let mut readers: HashSet<SigningPublicKey> = all
        .iter()
        .filter(|a| !fresh.contains(&a.index))
        .map(|a| a.event.statement())
        .filter(|e| e.outcome == Outcome::Allowed)
        .map(|e| e.reader)
        .collect();
    new.iter()
        .map(|record| {
            let event = record.event.statement();
            let notice = access_notice(record, readers.contains(&event.reader), prefs);
            if event.outcome == Outcome::Allowed {
                readers.insert(event.reader);
            }
            notice
        })
        .collect()
}

/// The notice for an access event.
pub fn access_notice(record: &AccessRecord, known_reader: bool, prefs: &NoticePrefs) -> Notice {
    let event = record.event.statement();
    let kind = classify(event, known_reader);
    Notice {
        kind,
        delivery: prefs.delivery(kind),
        index: record.index,
        at: event.at.to_string(),
        text: describe_access(event),
    }
}

/// An access event in a sentence: who, what (in words), and for a refusal why.
pub fn describe_access(event: &AccessEvent) -> String {
    let who = if event.organisation.is_empty() || event.organisation == event.reader_name {
        event.reader_name.clone()
    } else {
        format!("{} at {}", event.reader_name, event.organisation)
    };
    let what = what_was_asked(event);
    let reason = event.emergency_reason.as_deref().and_then(custodia_core::entry::emergency_reason_words);
    let how = match (event.break_glass, reason) {
        (true, Some(words)) => format!(" using your emergency card, saying {words}"),
        (true, None) => " using your emergency card".to_owned(),
        _ => String::new(),
    };
    if event.reader == event.patient {
        return match event.outcome {
            Outcome::Allowed => format!("You read {what} yourself."),
            Outcome::Denied => format!(
                "A request signed with your key for {what} was refused: {}.",
                refusal_in_words(event.reason.as_deref().unwrap_or_default())
            ),
        };
    }
    match event.outcome {
        Outcome::Allowed => format!("{who} read {what}{how}."),
        Outcome::Denied => format!(
            "{who} tried to read {what}{how} and was refused: {}.",
            refusal_in_words(event.reason.as_deref().unwrap_or_default())
        ),
    }
}

/// The records an event is about, in words: what was read ("your lab results (3 records)"), or for an
/// attempt that read nothing, what was asked for ("your allergies").
pub fn what_was_asked(event: &AccessEvent) -> String {
    if event.resources.is_empty() { records_asked_for(&event.request) } else { records_read(&event.resources) }
}

/// What a patient calls the records of a FHIR type, with the category when it changes the answer
/// (an Observation may be a lab result or a vital sign). Never the type's own name.
pub fn records_word(resource_type: &str, category: Option<&str>) -> &'static str {
    let category = category.map(|c| c.rsplit('|').next().unwrap_or(c).to_ascii_lowercase());
    match (resource_type, category.as_deref()) {
        ("Observation", Some("laboratory")) | ("DiagnosticReport", Some("lab" | "laboratory")) => "your lab results",
        ("Observation", Some("vital-signs")) => "your vital signs",
        ("Observation", Some("social-history")) => "your lifestyle details",
        ("Observation", Some("imaging")) => "your scan results",
        ("Observation", _) => "your test results and measurements",
        ("AllergyIntolerance", _) => "your allergies",
        ("Condition", _) => "your health conditions",
        ("MedicationRequest" | "MedicationStatement" | "MedicationAdministration" | "MedicationDispense", _) => {
            "your medicines"
        }
        ("Immunization", _) => "your vaccinations",
        ("Procedure", _) => "your operations and procedures",
        ("DiagnosticReport", _) => "your test reports",
        ("DocumentReference" | "Composition", _) => "your clinical letters and notes",
        ("ImagingStudy", _) => "your scans and X-rays",
        ("Encounter", _) => "your visits",
        ("Patient", _) => "your personal details",
        ("CarePlan" | "Goal", _) => "your care plans",
        ("FamilyMemberHistory", _) => "your family history",
        ("Coverage", _) => "your insurance details",
        _ => "other health records",
    }
}

/// The records of an allowed read, in words: "your lab results and your allergies (3 records)".
fn records_read(resources: &[AccessedResource]) -> String {
    let mut words: Vec<&str> = Vec::new();
    for r in resources {
        let word = records_word(&r.resource_type, r.category.as_deref());
        if !words.contains(&word) {
            words.push(word);
        }
    }
    let count = if resources.len() == 1 { "1 record".to_owned() } else { format!("{} records", resources.len()) };
    format!("{} ({count})", join_words(&words))
}

/// What a request asked for, in words, from its type and any category it searched for.
fn records_asked_for(request: &str) -> String {
    let target = request.split_once(' ').map_or(request, |(_, t)| t);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let resource_type =
        path.trim_start_matches('/').rsplit("fhir/").next().unwrap_or("").split('/').next().unwrap_or("");
    let category = query.split('&').find_map(|p| p.strip_prefix("category="));
    if resource_type.is_empty() || resource_type == "metadata" {
        return "your records".to_owned();
    }
    records_word(resource_type, category).to_owned()
}

fn join_words(words: &[&str]) -> String {
    match words {
        [] => "your records".to_owned(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Why a gateway refused, in words, from the reason it logged.
pub fn refusal_in_words(reason: &str) -> &'static str {
    let reason = reason.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| reason.contains(w));
    if has(&["revoked", "withdrawn"]) {
        "you had withdrawn that permission"
    } else if has(&["expired", "not yet valid", "not valid yet"]) {
        "their permission was not valid at that time"
    } else if has(&["read limit", "reads allowed"]) {
        "their permission's number of reads was used up"
    } else if has(&["label", "sensitive", "confidential"]) {
        "the records are marked sensitive and their permission does not include them"
    } else if has(&["purpose"]) {
        "their reason for reading is not one you allowed"
    } else if has(&["scope", "not covered", "does not cover", "not allow"]) {
        "their permission does not cover those records"
    } else if has(&["not linked", "no patient", "no record number", "several patients"]) {
        "the hospital could not match you to its records"
    } else if has(&["rotated away"]) {
        "the key it was signed with is one you replaced (a lost or old device's)"
    } else if has(&["replay", "signature", "nonce"]) {
        "the request was not properly signed"
    } else if has(&["ledger", "witness"]) {
        "the permission could not be checked against the public ledger"
    } else {
        "the hospital's gateway did not allow it"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn defaults_interrupt_for_all_but_routine_reads() {
        let prefs = NoticePrefs::default();
        assert_eq!(prefs.delivery(NoticeKind::BreakGlass), Delivery::Instant);
        assert_eq!(prefs.delivery(NoticeKind::NewReader), Delivery::Instant);
        assert_eq!(prefs.delivery(NoticeKind::Routine), Delivery::Summary);
        assert_eq!(prefs.delivery(NoticeKind::Recovery), Delivery::Instant);
    }

    #[test]
    fn settings_parse_and_save_and_recovery_cannot_be_silenced() {
        let dir = tempfile::tempdir().unwrap();
        let mut prefs = NoticePrefs::load(dir.path()).unwrap();
        prefs.set("routine=instant").unwrap();
        prefs.set("refused = never").unwrap();
        assert!(matches!(prefs.set("recovery=never"), Err(PrefsError::UnknownKind(_))));
        assert!(matches!(prefs.set("routine=loud"), Err(PrefsError::UnknownDelivery(_))));
        assert!(matches!(prefs.set("routine"), Err(PrefsError::Malformed(_))));
        prefs.save(dir.path()).unwrap();
        let back = NoticePrefs::load(dir.path()).unwrap();
        assert_eq!(back.delivery(NoticeKind::Routine), Delivery::Instant);
        assert_eq!(back.delivery(NoticeKind::Refused), Delivery::Never);
        assert_eq!(back.delivery(NoticeKind::Recovery), Delivery::Instant);
        std::fs::write(dir.path().join(PREFS_FILE), "{\"recovery\":\"never\"}").unwrap();
        assert!(NoticePrefs::load(dir.path()).is_err(), "a file silencing recovery is not accepted");
    }

    #[test]
    fn records_are_named_in_words_never_as_fhir_types_or_codes() {
        assert_eq!(records_word("Observation", Some("laboratory")), "your lab results");
        assert_eq!(
            records_word("Observation", Some("http://terminology.hl7.org/CodeSystem/observation-category|vital-signs")),
            "your vital signs"
        );
        assert_eq!(records_word("AllergyIntolerance", Some("food")), "your allergies");
        assert_eq!(records_word("AllergyIntolerance", Some("medication")), "your allergies");
        assert_eq!(records_word("DocumentReference", None), "your clinical letters and notes");
        assert_eq!(records_word("Basic", None), "other health records");
        assert_eq!(records_asked_for("GET Observation?patient=p1&category=laboratory"), "your lab results");
        assert_eq!(records_asked_for("GET /fhir/AllergyIntolerance/a1"), "your allergies");
        assert_eq!(records_asked_for("GET DocumentReference"), "your clinical letters and notes");
        let two = [
            AccessedResource {
                resource_type: "Observation".into(),
                id: "o1".into(),
                labels: vec![],
                category: Some("laboratory".into()),
            },
            AccessedResource {
                resource_type: "AllergyIntolerance".into(),
                id: "a1".into(),
                labels: vec![],
                category: Some("food".into()),
            },
        ];
        assert_eq!(records_read(&two), "your lab results and your allergies (2 records)");
    }

    fn event(reader_is_patient: bool, outcome: Outcome, reason: Option<&str>) -> AccessEvent {
        let id = |n: u8| {
            custodia_core::Identity::from_seed(&custodia_core::MasterSeed::from_bytes([n; 32])).signing_public()
        };
        AccessEvent {
            id: custodia_core::entry::EntryNonce::generate(),
            gateway: id(1),
            patient: id(2),
            reader: if reader_is_patient { id(2) } else { id(3) },
            reader_name: "Dr Grace Hopper".into(),
            organisation: "Riverside Clinic".into(),
            grant_id: None,
            purpose: custodia_core::purpose::PurposeOfUse::TREATMENT,
            at: custodia_core::time::Timestamp::from_unix(1_800_000_000).unwrap(),
            outcome,
            break_glass: false,
            request: "GET AllergyIntolerance".into(),
            resources: vec![],
            reason: reason.map(str::to_owned),
            emergency_reason: None,
        }
    }

    #[test]
    fn the_patients_own_reads_are_theirs_and_routine_and_a_retired_key_is_refused() {
        let own = event(true, Outcome::Allowed, None);
        assert_eq!(classify(&own, false), NoticeKind::Routine, "the patient is never a new reader of their records");
        assert_eq!(describe_access(&own), "You read your allergies yourself.");
        let retired = event(true, Outcome::Denied, Some("a key you rotated away asked for your records"));
        assert_eq!(classify(&retired, false), NoticeKind::Refused);
        assert_eq!(
            describe_access(&retired),
            "A request signed with your key for your allergies was refused: the key it was signed with is one you \
             replaced (a lost or old device's)."
        );
        let theirs = event(false, Outcome::Allowed, None);
        assert_eq!(classify(&theirs, false), NoticeKind::NewReader);
        assert_eq!(classify(&theirs, true), NoticeKind::Routine);
    }

    #[test]
    fn refusals_say_why_in_words() {
        assert_eq!(refusal_in_words("grant revoked at entry 12"), "you had withdrawn that permission");
        assert_eq!(refusal_in_words("read limit reached (2 reads)"), "their permission's number of reads was used up");
        assert_eq!(refusal_in_words("something new"), "the hospital's gateway did not allow it");
    }
}
