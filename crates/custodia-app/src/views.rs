//! What the UI is shown: plain JSON views of the wallet, with TypeScript types generated from these
//! definitions (see the `typescript_bindings_are_current` test), so the two sides cannot drift.

use custodia_core::SigningPublicKey;
use custodia_core::entry::{AccessedResource, Member, Outcome};
use custodia_core::time::Timestamp;
use custodia_wallet::wallet::{AccessRecord, GrantStanding, IssuedGrant, Wallet};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Unix milliseconds, as JavaScript's `Date` takes them.
pub fn ms(t: Timestamp) -> i64 {
    t.unix().saturating_mul(1000)
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Status {
    pub state: WalletState,
    pub wallet_dir: String,
    pub default_ledger: Option<String>,
    pub auto_lock_minutes: u32,
    /// Only while unlocked.
    pub summary: Option<Summary>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum WalletState {
    None,
    Locked,
    Unlocked,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Summary {
    pub name: String,
    pub key: String,
    pub fingerprint: String,
    #[ts(type = "number")]
    pub created_at: i64,
    pub ledger: Option<LedgerView>,
    pub auto_lock_minutes: u32,
    /// A new device waiting for the patient's guardians: the app shows the recovery's progress, not Home.
    pub recovering: bool,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct LedgerView {
    pub url: String,
    #[ts(type = "number")]
    pub checkpoint_size: i64,
    #[ts(type = "number | null")]
    pub synced_through: Option<i64>,
    /// The fingerprint of the network profile the wallet joined with (none: joined from a bare address,
    /// nothing pinned).
    pub network: Option<String>,
    /// The witnesses whose quorum every checkpoint needs.
    pub witnesses: Vec<String>,
}

/// A network profile, shown before joining: the fingerprint to compare with the one the network
/// published, and what it pins.
#[derive(Clone, Debug, Serialize, TS)]
pub struct NetworkView {
    pub fingerprint: String,
    pub ledger_url: String,
    pub authority: String,
    pub witnesses: Vec<String>,
    /// How many witnesses must vouch for each checkpoint, in words.
    pub quorum: String,
    /// The profile's text, to pass to `join_network`.
    pub text: String,
}

pub fn network_view(profile: &custodia_wallet::network::NetworkProfile) -> NetworkView {
    let policy = &profile.policy;
    let quorum = match policy.quorum {
        None => "no witnesses required".to_owned(),
        Some(custodia_log::policy::Member::Witness(i)) => {
            format!("{} must vouch for every checkpoint", policy.witnesses[i].name)
        }
        Some(custodia_log::policy::Member::Group(g)) => {
            let group = &policy.groups[g];
            format!("{} of {} must vouch for every checkpoint", group.threshold, group.members.len())
        }
    };
    NetworkView {
        fingerprint: profile.fingerprint().to_string(),
        ledger_url: profile.ledger_url.clone(),
        authority: profile.authority.to_string(),
        witnesses: policy.witnesses.iter().map(|w| w.name.clone()).collect(),
        quorum,
        text: profile.text().to_owned(),
    }
}

/// Someone the patient deals with. `verified` means the wallet holds their enrollment, signed by the
/// network authority and proven into the ledger.
#[derive(Clone, Debug, PartialEq, Serialize, TS)]
pub struct Party {
    pub key: String,
    pub name: Option<String>,
    pub organisation: Option<String>,
    pub role: Option<String>,
    pub verified: bool,
}

impl Party {
    pub fn of(key: &SigningPublicKey, members: &[Member]) -> Party {
        match members.iter().find(|m| m.key == *key) {
            Some(m) => Party::member(m),
            None => Party { key: key.to_string(), name: None, organisation: None, role: None, verified: false },
        }
    }

    pub fn member(m: &Member) -> Party {
        Party {
            key: m.key.to_string(),
            name: Some(m.name.clone()),
            organisation: Some(m.org.clone()),
            role: Some(m.role.as_str().to_owned()),
            verified: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS)]
pub struct Code {
    pub code: String,
    pub display: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    Active,
    Expired,
    Revoked,
}

impl From<GrantStanding> for GrantStatus {
    fn from(s: GrantStanding) -> Self {
        match s {
            GrantStanding::Active => GrantStatus::Active,
            GrantStanding::Expired => GrantStatus::Expired,
            GrantStanding::Revoked => GrantStatus::Revoked,
        }
    }
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct GrantView {
    pub id: String,
    pub grantee: Party,
    pub scopes: Vec<String>,
    pub labels: Vec<Code>,
    pub purpose: Code,
    pub note: String,
    #[ts(type = "number")]
    pub issued_at: i64,
    #[ts(type = "number")]
    pub not_before: i64,
    #[ts(type = "number")]
    pub not_after: i64,
    pub max_reads: Option<u32>,
    pub status: GrantStatus,
    #[ts(type = "number | null")]
    pub grant_index: Option<i64>,
    #[ts(type = "number | null")]
    pub revocation_index: Option<i64>,
    #[ts(type = "number | null")]
    pub revoked_at: Option<i64>,
    /// Reads the wallet has seen logged under this grant, and refused attempts.
    pub reads: u32,
    pub denied: u32,
    /// A standing break-glass grant printed on an emergency card: its grantee is the card, and any
    /// enrolled emergency provider holding the card may read under it.
    pub emergency_card: bool,
}

impl GrantView {
    /// `counts` are the reads made and attempts refused under the grant (from the log's index).
    pub fn of(g: &IssuedGrant, members: &[Member], counts: (u32, u32), now: Timestamp) -> GrantView {
        let s = &g.grant;
        let (reads, denied) = counts;
        GrantView {
            id: s.id.to_string(),
            grantee: if s.emergency_card {
                Party {
                    key: s.grantee.to_string(),
                    name: Some("Emergency card".into()),
                    organisation: Some("any enrolled emergency provider holding the card".into()),
                    role: Some("emergency card".into()),
                    verified: false,
                }
            } else {
                Party::of(&s.grantee, members)
            },
            scopes: s.scopes.iter().map(ToString::to_string).collect(),
            labels: s
                .allowed_labels
                .iter()
                .map(|l| Code { code: l.code().to_owned(), display: l.display().to_owned() })
                .collect(),
            purpose: Code { code: s.purpose.code().to_owned(), display: s.purpose.display().to_owned() },
            note: s.note.clone(),
            issued_at: ms(s.issued_at),
            not_before: ms(s.not_before),
            not_after: ms(s.not_after),
            max_reads: s.max_reads,
            status: g.standing(now).into(),
            grant_index: g.grant_index.map(|i| i as i64),
            revocation_index: g.revocation_index.map(|i| i as i64),
            revoked_at: g.revocation.as_ref().map(|r| ms(r.revoked_at)),
            reads,
            denied,
            emergency_card: s.emergency_card,
        }
    }
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Resource {
    #[serde(rename = "type")]
    #[ts(rename = "type")]
    pub resource_type: String,
    pub id: String,
    pub labels: Vec<String>,
    pub category: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum AccessOutcome {
    Allowed,
    Denied,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct AccessRow {
    #[ts(type = "number")]
    pub index: i64,
    #[ts(type = "number")]
    pub at: i64,
    pub reader: Party,
    pub organisation: String,
    pub gateway: String,
    pub purpose: Code,
    pub outcome: AccessOutcome,
    pub break_glass: bool,
    pub request: String,
    pub resources: Vec<Resource>,
    pub categories: Vec<String>,
    pub labels: Vec<String>,
    pub grant_id: Option<String>,
    pub reason: Option<String>,
    /// On an emergency-card read, the reason the reader gave, in words.
    pub emergency_reason: Option<String>,
    /// The records, in words ("your lab results (2 records)"; for a refused attempt, what was asked for).
    pub what: String,
    /// Why an attempt was refused, in words (`reason` is the gateway's own text).
    pub why: Option<String>,
    /// Every event the wallet holds was proven into a checkpoint it checked for consistency.
    pub verified: bool,
}

/// The word a patient would use for what a resource is: the gateway's category if it gave one, else
/// one derived from the resource type.
pub fn category_of(r: &AccessedResource) -> String {
    if let Some(c) = &r.category {
        return c.clone();
    }
    match r.resource_type.as_str() {
        "AllergyIntolerance" => "allergies",
        "MedicationRequest" | "MedicationStatement" | "MedicationAdministration" => "medications",
        "Condition" => "conditions",
        "Observation" => "observations",
        "DiagnosticReport" => "reports",
        "ImagingStudy" => "imaging",
        "DocumentReference" => "notes",
        "Immunization" => "immunizations",
        "Procedure" => "procedures",
        other => return other.to_ascii_lowercase(),
    }
    .to_owned()
}

impl AccessRow {
    pub fn of(a: &AccessRecord, members: &[Member]) -> AccessRow {
        let e = a.event.statement();
        let mut categories: Vec<String> = e.resources.iter().map(category_of).collect();
        categories.sort();
        categories.dedup();
        let mut labels: Vec<String> =
            e.resources.iter().flat_map(|r| r.labels.iter().map(|l| l.code().to_owned())).collect();
        labels.sort();
        labels.dedup();
        let mut reader = Party::of(&e.reader, members);
        if reader.name.is_none() {
            // The gateway vouches for the reader's name and organisation in its signed event.
            reader.name = Some(e.reader_name.clone());
            reader.organisation = Some(e.organisation.clone());
        }
        AccessRow {
            index: a.index as i64,
            at: ms(e.at),
            reader,
            organisation: e.organisation.clone(),
            gateway: e.gateway.to_string(),
            purpose: Code { code: e.purpose.code().to_owned(), display: e.purpose.display().to_owned() },
            outcome: match e.outcome {
                Outcome::Allowed => AccessOutcome::Allowed,
                Outcome::Denied => AccessOutcome::Denied,
            },
            break_glass: e.break_glass,
            request: e.request.clone(),
            resources: e
                .resources
                .iter()
                .map(|r| Resource {
                    resource_type: r.resource_type.clone(),
                    id: r.id.clone(),
                    labels: r.labels.iter().map(|l| l.code().to_owned()).collect(),
                    category: Some(category_of(r)),
                })
                .collect(),
            categories,
            labels,
            grant_id: e.grant_id.map(|g| g.to_string()),
            reason: e.reason.clone(),
            emergency_reason: e
                .emergency_reason
                .as_deref()
                .and_then(custodia_core::entry::emergency_reason_words)
                .map(str::to_owned),
            what: custodia_wallet::notices::what_was_asked(e),
            why: e.reason.as_deref().map(|r| custodia_wallet::notices::refusal_in_words(r).to_owned()),
            verified: true,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(optional_fields)]
pub struct AccessFilter {
    /// A reader's key.
    pub reader: Option<String>,
    pub organisation: Option<String>,
    pub category: Option<String>,
    /// Unix ms, inclusive.
    #[ts(optional, type = "number")]
    pub from: Option<i64>,
    /// Unix ms, exclusive.
    #[ts(optional, type = "number")]
    pub to: Option<i64>,
    pub outcome: Option<AccessOutcome>,
    pub break_glass: Option<bool>,
    pub grant_id: Option<String>,
    /// Case-insensitive, in the reader's name, the organisation and the request.
    pub text: Option<String>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Histogram {
    #[ts(type = "number")]
    pub from: i64,
    #[ts(type = "number")]
    pub bucket_ms: i64,
    pub allowed: Vec<u32>,
    pub denied: Vec<u32>,
    pub break_glass: Vec<u32>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct AccessPage {
    #[ts(type = "number")]
    pub total: i64,
    #[ts(type = "number")]
    pub total_all: i64,
    #[ts(type = "number")]
    pub offset: i64,
    /// Newest first.
    pub rows: Vec<AccessRow>,
    /// Facets over every event, for the filter menus.
    pub readers: Vec<Party>,
    pub organisations: Vec<String>,
    pub categories: Vec<String>,
    /// Over the filtered events.
    pub histogram: Histogram,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Proof {
    #[ts(type = "number")]
    pub index: i64,
    pub leaf_hash: String,
    #[ts(type = "number")]
    pub checkpoint_size: i64,
    pub root: String,
    /// The signed checkpoint note.
    pub checkpoint: String,
    pub path: Vec<String>,
    pub verified: bool,
    /// The witnesses whose cosignatures on the checkpoint verified (empty: no witness policy).
    pub cosigned_by: Vec<String>,
    /// The same proof as a C2SP tlog-proof, to hand to someone else.
    pub tlog_proof: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Export {
    pub filename: String,
    pub content_type: String,
    pub text: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Contact {
    #[serde(flatten)]
    #[ts(flatten)]
    pub party: Party,
    pub fingerprint: String,
    #[ts(type = "number | null")]
    pub last_granted: Option<i64>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct SyncResult {
    #[ts(type = "number")]
    pub checkpoint_size: i64,
    pub new_events: Vec<AccessRow>,
    /// How each of `new_events` reaches the patient, in the same order.
    pub notices: Vec<NoticeView>,
    pub complete: bool,
    /// Recovery requests for this wallet found in this sync and not cancelled: if the patient did not make
    /// them, someone is trying to take the wallet over.
    pub new_recovery_alerts: Vec<RecoveryAlert>,
}

/// How a sync's new event reaches the patient: its kind, and the delivery the patient chose for it
/// (`instant`: a notification; `summary`: the daily summary; `never`: only the log).
#[derive(Clone, Debug, Serialize, TS)]
pub struct NoticeView {
    #[ts(type = "number")]
    pub index: i64,
    #[ts(type = "'break-glass' | 'sensitive' | 'refused' | 'new-reader' | 'routine' | 'recovery'")]
    pub kind: String,
    #[ts(type = "'instant' | 'summary' | 'never'")]
    pub delivery: String,
    /// The event in a sentence, in plain words.
    pub text: String,
}

impl NoticeView {
    pub fn of(n: &custodia_wallet::notices::Notice) -> Self {
        NoticeView {
            index: n.index as i64,
            kind: n.kind.as_str().into(),
            delivery: n.delivery.as_str().into(),
            text: n.text.clone(),
        }
    }
}

/// One kind of notice and how the patient wants it delivered.
#[derive(Clone, Debug, Serialize, TS)]
pub struct NoticeChoice {
    #[ts(type = "'break-glass' | 'sensitive' | 'refused' | 'new-reader' | 'routine'")]
    pub kind: String,
    /// What the kind is, for a settings screen.
    pub words: String,
    #[ts(type = "'instant' | 'summary' | 'never'")]
    pub delivery: String,
}

/// Every choosable kind with its delivery; recovery requests always interrupt and are not listed.
#[derive(Clone, Debug, Serialize, TS)]
pub struct NoticePrefsView {
    pub choices: Vec<NoticeChoice>,
}

pub fn notice_prefs_view(prefs: &custodia_wallet::notices::NoticePrefs) -> NoticePrefsView {
    NoticePrefsView {
        choices: prefs
            .all()
            .into_iter()
            .map(|(kind, delivery)| NoticeChoice {
                kind: kind.as_str().into(),
                words: kind.words().into(),
                delivery: delivery.as_str().into(),
            })
            .collect(),
    }
}

/// One record in a preview: the kind of record in words, the record (`Type/id`), and for a hidden one why.
#[derive(Clone, Debug, Serialize, TS)]
pub struct PreviewRecord {
    pub words: String,
    pub reference: String,
    pub why: Option<String>,
}

/// What a grant would release at a hospital, and what stays hidden.
#[derive(Clone, Debug, Serialize, TS)]
pub struct PreviewView {
    pub gateway: String,
    #[ts(type = "number")]
    pub total: i64,
    pub released: Vec<PreviewRecord>,
    pub hidden: Vec<PreviewRecord>,
}

impl PreviewView {
    pub fn of(gateway: &str, preview: &custodia_wallet::own_records::Preview, total: usize) -> Self {
        let words = |r: &serde_json::Value| {
            let text = |k: &str| r.get(k).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
            let category = r.pointer("/category/0/coding/0/code").and_then(serde_json::Value::as_str);
            custodia_wallet::notices::records_word(&text("resourceType"), category).to_owned()
        };
        let record = |r: &serde_json::Value, why: Option<&str>| PreviewRecord {
            words: words(r),
            reference: custodia_wallet::own_records::reference(r),
            why: why.map(|w| custodia_wallet::notices::refusal_in_words(w).to_owned()),
        };
        PreviewView {
            gateway: gateway.to_owned(),
            total: total as i64,
            released: preview.released.iter().map(|r| record(r, None)).collect(),
            hidden: preview.hidden.iter().map(|(r, why)| record(r, Some(why))).collect(),
        }
    }
}

/// What `wait_news` found: the newest entry the ledger announced for this wallet (a sync reads it once a
/// witnessed checkpoint covers it), and whether the ledger's stream is connected (when not, only the
/// periodic sync brings news).
#[derive(Clone, Debug, Serialize, TS)]
pub struct News {
    #[ts(type = "number | null")]
    pub latest: Option<i64>,
    pub live: bool,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Home {
    pub active_grants: Vec<GrantView>,
    pub recent_reads: Vec<AccessRow>,
    pub attention: Vec<Attention>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    BreakGlass,
    Denied,
    Expiring,
    Unposted,
    NotEnrolled,
    NeverSynced,
    /// Someone asked this wallet's guardians to recover it on another device.
    RecoveryRequest,
    /// This wallet's key was retired when it was recovered on another device.
    Retired,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Attention {
    pub kind: AttentionKind,
    pub message: String,
    pub grant_id: Option<String>,
    #[ts(type = "number | null")]
    pub index: Option<i64>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct GrantDetail {
    pub grant: GrantView,
    pub reads: Vec<AccessRow>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct QrView {
    pub text: String,
    pub svg: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Decoded {
    pub text: String,
}

/// The wallet's summary, as every screen's header needs it.
pub fn summary(w: &Wallet, auto_lock_minutes: u32) -> Summary {
    Summary {
        name: w.name().to_owned(),
        key: w.signing_key().to_string(),
        fingerprint: w.fingerprint().to_string(),
        created_at: ms(w.created_at()),
        ledger: w.ledger().map(|l| LedgerView {
            url: l.url.clone(),
            checkpoint_size: l.checkpoint.size as i64,
            synced_through: l.synced_through.map(|i| i as i64),
            network: l.network.clone(),
            witnesses: l.witness_policy.iter().flat_map(|p| p.witnesses.iter().map(|w| w.name.clone())).collect(),
        }),
        auto_lock_minutes,
        recovering: w.is_recovering(),
    }
}

/// `open_request`: a scanned access request, checked: the requester as the ledger enrolled them.
#[derive(Clone, Debug, Serialize, TS)]
pub struct AccessRequestView {
    /// The request's id, to answer it by.
    pub id: String,
    pub requester: Party,
    pub fingerprint: String,
    pub purpose: Code,
    pub scopes: Vec<String>,
    #[ts(type = "number")]
    pub duration_seconds: u32,
    /// Unix ms.
    #[ts(type = "number")]
    pub created_at: i64,
    /// Unix ms: the request can be answered until then.
    #[ts(type = "number")]
    pub expires_at: i64,
}

/// `answer_request`'s arguments: approve (as asked, or narrower) or decline.
#[derive(Clone, Debug, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(optional_fields)]
pub struct AnswerRequestArgs {
    pub id: String,
    pub approve: bool,
    pub scopes: Option<Vec<String>>,
    #[ts(optional, type = "number")]
    pub duration_seconds: Option<u32>,
}

/// `answer_request`'s result.
#[derive(Clone, Debug, Serialize, TS)]
pub struct RequestAnswer {
    pub approved: bool,
    pub grant: Option<GrantView>,
}

/// `create_emergency_card`'s arguments: what the card shows, and for how long.
#[derive(Clone, Debug, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(optional_fields)]
pub struct EmergencyCardArgs {
    pub scopes: Vec<String>,
    pub labels: Option<Vec<String>>,
    #[ts(type = "number")]
    pub duration_seconds: u64,
    /// The name printed on the card (default: the wallet's).
    pub name: Option<String>,
}

/// `create_emergency_card`'s result: the grant, posted, and the card in three formats. The card holds the
/// only copy of its secret; the app does not keep it.
#[derive(Clone, Debug, Serialize, TS)]
pub struct EmergencyCardView {
    pub grant: GrantView,
    pub svg: String,
    pub png_base64: String,
    pub pdf_base64: String,
}

/// One of the patient's guardians.
#[derive(Clone, Debug, Serialize, TS)]
pub struct Guardian {
    /// The guardian's share number (1 to the number of guardians).
    pub index: u8,
    pub name: String,
    pub key: String,
    /// When the guardian's wallet acknowledged its share (unix ms).
    #[ts(type = "number | null")]
    pub accepted_at: Option<i64>,
    /// When the guardian last proved it still holds a valid share (unix ms).
    #[ts(type = "number | null")]
    pub proved_at: Option<i64>,
}

/// The patient's guardians: any `threshold` of the `count` together can recover the wallet.
#[derive(Clone, Debug, Serialize, TS)]
pub struct GuardianSet {
    pub set_id: String,
    pub threshold: u8,
    pub count: u8,
    /// How long guardians hold their shares back after a recovery request, for a veto.
    #[ts(type = "number")]
    pub waiting_seconds: u64,
    #[ts(type = "number")]
    pub created_at: i64,
    #[ts(type = "number | null")]
    pub entry_index: Option<i64>,
    /// When the guardians were last asked to prove they hold their shares.
    #[ts(type = "number | null")]
    pub challenged_at: Option<i64>,
    pub guardians: Vec<Guardian>,
}

impl GuardianSet {
    pub fn of(s: &custodia_wallet::wallet::GuardianSetView) -> GuardianSet {
        GuardianSet {
            set_id: s.set_id.to_string(),
            threshold: s.threshold,
            count: s.count,
            waiting_seconds: s.waiting_seconds,
            created_at: ms(s.created_at),
            entry_index: s.entry_index.map(|i| i as i64),
            challenged_at: s.challenged_at.map(ms),
            guardians: s
                .guardians
                .iter()
                .map(|g| Guardian {
                    index: g.index,
                    name: g.name.clone(),
                    key: g.key.to_string(),
                    accepted_at: g.accepted_at.map(ms),
                    proved_at: g.proved_at.map(ms),
                })
                .collect(),
        }
    }
}

/// A share this wallet holds as someone's guardian.
#[derive(Clone, Debug, Serialize, TS)]
pub struct HeldShare {
    pub patient: String,
    pub patient_name: String,
    pub ledger: String,
    pub set_id: String,
    pub index: u8,
    pub threshold: u8,
    pub count: u8,
    #[ts(type = "number")]
    pub received_at: i64,
    /// The patient has since chosen other guardians or rotated keys: this share opens nothing current.
    pub superseded: bool,
}

impl HeldShare {
    pub fn of(s: &custodia_wallet::wallet::HeldShareView) -> HeldShare {
        HeldShare {
            patient: s.patient.to_string(),
            patient_name: s.patient_name.clone(),
            ledger: s.ledger.clone(),
            set_id: s.set_id.to_string(),
            index: s.index,
            threshold: s.threshold,
            count: s.count,
            received_at: ms(s.received_at),
            superseded: s.superseded,
        }
    }
}

/// A recovery request for this wallet, seen on the ledger: someone (the patient on a new device, or not)
/// asked this wallet's guardians for their shares. The old device can cancel it.
#[derive(Clone, Debug, Serialize, TS)]
pub struct RecoveryAlert {
    #[ts(type = "number")]
    pub index: i64,
    pub request_id: String,
    /// The asking device's one-time key.
    pub device: String,
    #[ts(type = "number")]
    pub asked_at: i64,
    /// Set once it was cancelled (from this device or another with the same key).
    #[ts(type = "number | null")]
    pub cancelled_at: Option<i64>,
}

impl RecoveryAlert {
    pub fn of(a: &custodia_wallet::wallet::RecoveryAlert) -> RecoveryAlert {
        RecoveryAlert {
            index: a.index as i64,
            request_id: a.request_id.to_string(),
            device: a.device.to_string(),
            asked_at: ms(a.asked_at),
            cancelled_at: a.cancelled_at.map(ms),
        }
    }
}

/// This wallet's key was rotated away by another device: the patient recovered the wallet elsewhere.
#[derive(Clone, Debug, Serialize, TS)]
pub struct RetiredView {
    #[ts(type = "number")]
    pub index: i64,
    #[ts(type = "number")]
    pub at: i64,
    pub successor: String,
}

/// `guardians`: the patient's guardian set, the shares this wallet holds for others, recovery requests
/// for this wallet, and whether it was retired. Read from the wallet alone (no ledger call).
#[derive(Clone, Debug, Serialize, TS)]
pub struct Guardians {
    pub set: Option<GuardianSet>,
    pub held: Vec<HeldShare>,
    /// Oldest first; the open ones have no `cancelled_at`.
    pub alerts: Vec<RecoveryAlert>,
    pub retired: Option<RetiredView>,
    /// The proposed threshold for 2 to 10 guardians (index 0 is for 2): a majority.
    pub default_thresholds: Vec<u8>,
    #[ts(type = "number")]
    pub default_waiting_seconds: u64,
    #[ts(type = "number")]
    pub max_waiting_seconds: u64,
}

/// `guardian_contact`: someone who could be a guardian, from their contact card or key.
#[derive(Clone, Debug, Serialize, TS)]
pub struct GuardianCandidate {
    pub name: String,
    pub key: String,
    pub fingerprint: String,
    /// Named by a scanned contact card (else looked up on the ledger by key).
    pub from_card: bool,
}

/// `set_guardians`'s arguments: each contact is a contact card's QR text or a signing key.
#[derive(Clone, Debug, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(optional_fields)]
pub struct SetGuardiansArgs {
    pub contacts: Vec<String>,
    /// Default: a majority.
    pub threshold: Option<u8>,
    /// Default: a day.
    #[ts(optional, type = "number")]
    pub waiting_seconds: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum InboxRequestState {
    /// Waiting for the guardian to type the code the patient reads from the new device.
    AwaitingCode,
    /// Approved; the share goes out when the waiting period ends.
    Approved,
    Released,
    Cancelled,
    /// Too many wrong codes were typed.
    Locked,
}

impl From<custodia_wallet::wallet::RequestState> for InboxRequestState {
    fn from(s: custodia_wallet::wallet::RequestState) -> Self {
        use custodia_wallet::wallet::RequestState as S;
        match s {
            S::AwaitingCode => InboxRequestState::AwaitingCode,
            S::Approved => InboxRequestState::Approved,
            S::Released => InboxRequestState::Released,
            S::Cancelled => InboxRequestState::Cancelled,
            S::Locked => InboxRequestState::Locked,
        }
    }
}

/// A recovery request in a guardian's inbox.
#[derive(Clone, Debug, Serialize, TS)]
pub struct InboxRequest {
    pub request_id: String,
    pub patient: String,
    pub patient_name: String,
    pub device: String,
    #[ts(type = "number")]
    pub asked_at: i64,
    /// When the waiting period ends and an approved share may go out.
    #[ts(type = "number")]
    pub release_at: i64,
    pub state: InboxRequestState,
}

impl InboxRequest {
    pub fn of(r: &custodia_wallet::wallet::InboxRequest) -> InboxRequest {
        InboxRequest {
            request_id: r.request_id.to_string(),
            patient: r.patient.to_string(),
            patient_name: r.patient_name.clone(),
            device: r.device.to_string(),
            asked_at: ms(r.asked_at),
            release_at: ms(r.release_at),
            state: r.state.into(),
        }
    }
}

/// An emergency-card read of the records of someone this wallet guards, as the gateway that served it signed it.
#[derive(Clone, Debug, Serialize, TS)]
pub struct BreakGlassRead {
    /// The access event's id.
    pub id: String,
    pub patient: String,
    pub patient_name: String,
    pub reader_name: String,
    pub organisation: String,
    #[ts(type = "number")]
    pub at: i64,
    pub outcome: AccessOutcome,
    /// `Type/id` of each record read.
    pub resources: Vec<String>,
}

impl BreakGlassRead {
    pub fn of(n: &custodia_wallet::wallet::BreakGlassNotice) -> BreakGlassRead {
        BreakGlassRead {
            id: n.id.clone(),
            patient: n.patient.to_string(),
            patient_name: n.patient_name.clone(),
            reader_name: n.reader_name.clone(),
            organisation: n.organisation.clone(),
            at: ms(n.at),
            outcome: match n.outcome {
                Outcome::Allowed => AccessOutcome::Allowed,
                Outcome::Denied => AccessOutcome::Denied,
            },
            resources: n.resources.clone(),
        }
    }
}

/// `guardian_inbox`: what a guardian's inbox run did and what the wallet holds.
#[derive(Clone, Debug, Serialize, TS)]
pub struct GuardianInbox {
    pub shares: Vec<HeldShare>,
    /// Newest first.
    pub requests: Vec<InboxRequest>,
    /// Shares accepted in this run.
    pub accepted: u32,
    /// Checks answered in this run.
    pub proofs_sent: u32,
    /// Requests whose shares went out in this run.
    pub released: Vec<String>,
    /// As a patient: guardians' acknowledgements and proofs collected in this run.
    pub acknowledgements: u32,
    /// Emergency-card reads of the records of the people this wallet guards, newest first.
    pub break_glass: Vec<BreakGlassRead>,
    /// How many of them arrived in this run.
    pub new_break_glass: u32,
}

impl GuardianInbox {
    pub fn of(i: &custodia_wallet::wallet::Inbox) -> GuardianInbox {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let mut requests: Vec<InboxRequest> = i.requests.iter().map(InboxRequest::of).collect();
        requests.sort_by_key(|r| std::cmp::Reverse(r.asked_at));
        GuardianInbox {
            shares: i.shares.iter().map(HeldShare::of).collect(),
            requests,
            accepted: count(i.accepted),
            proofs_sent: count(i.proofs_sent),
            released: i.released.iter().map(ToString::to_string).collect(),
            acknowledgements: count(i.acknowledgements),
            break_glass: i.break_glass.iter().rev().map(BreakGlassRead::of).collect(),
            new_break_glass: count(i.new_break_glass),
        }
    }
}

/// `start_recovery`'s arguments. Works with no wallet: the new device's wallet is made with `passphrase`.
#[derive(Clone, Debug, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(optional_fields)]
pub struct StartRecoveryArgs {
    pub ledger_url: String,
    /// The patient's signing key (on their contact card, or shown by any of their guardians).
    pub patient_key: String,
    pub passphrase: String,
    /// The ledger's checkpoint key (otherwise trusted on first use).
    pub verifier_key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryPhase {
    /// Fewer shares than needed have come back.
    Waiting,
    /// Enough shares are in: finish.
    Ready,
    /// Cancelled from the patient's old device.
    Cancelled,
    /// The patient's guardians changed since the request: start again.
    Superseded,
}

/// Where a recovery on this (new) device stands.
#[derive(Clone, Debug, Serialize, TS)]
pub struct RecoveryProgress {
    pub request_id: String,
    pub patient: String,
    pub ledger: String,
    /// What the patient reads to each guardian: six digits, in two groups.
    pub code: String,
    #[ts(type = "number")]
    pub entry_index: i64,
    #[ts(type = "number")]
    pub asked_at: i64,
    /// When the waiting period ends and guardians who approved release their shares.
    #[ts(type = "number")]
    pub release_at: i64,
    pub threshold: u8,
    pub count: u8,
    /// Share numbers whose guardians approved (released ones included).
    pub approved: Vec<u8>,
    /// Share numbers received.
    pub received: Vec<u8>,
    pub phase: RecoveryPhase,
    #[ts(type = "number | null")]
    pub cancelled_at: Option<i64>,
}

impl RecoveryProgress {
    pub fn of(p: &custodia_wallet::wallet::RecoveryProgress) -> RecoveryProgress {
        use custodia_wallet::wallet::RecoveryPhase as P;
        RecoveryProgress {
            request_id: p.request_id.to_string(),
            patient: p.patient.to_string(),
            ledger: p.ledger.clone(),
            code: p.code.clone(),
            entry_index: p.entry_index as i64,
            asked_at: ms(p.asked_at),
            release_at: ms(p.release_at),
            threshold: p.threshold,
            count: p.count,
            approved: p.approved.clone(),
            received: p.received.clone(),
            phase: match p.phase {
                P::Waiting => RecoveryPhase::Waiting,
                P::Ready => RecoveryPhase::Ready,
                P::Cancelled => RecoveryPhase::Cancelled,
                P::Superseded => RecoveryPhase::Superseded,
            },
            cancelled_at: p.cancelled_at.map(ms),
        }
    }
}

/// `start_recovery`: the new device's wallet (unlocked, recovering) and the recovery's progress.
#[derive(Clone, Debug, Serialize, TS)]
pub struct RecoveryStarted {
    pub summary: Summary,
    pub progress: RecoveryProgress,
}

/// `finish_recovery`: the patient's wallet, restored on this device and rotated to a new key.
#[derive(Clone, Debug, Serialize, TS)]
pub struct RecoveryFinished {
    pub summary: Summary,
    /// The key recovered (now retired in favour of `summary.key`).
    pub patient: String,
    pub grants: u32,
    pub access_events: u32,
    pub guardians: u32,
}

/// `cancel_recovery`: the requests vetoed.
#[derive(Clone, Debug, Serialize, TS)]
pub struct RecoveryCancelled {
    pub cancelled: Vec<String>,
}
