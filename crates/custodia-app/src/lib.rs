//! The wallet app's commands.
//!
//! The Tauri shell and the browser-mode bridge are two transports over this one dispatcher: each
//! command takes a JSON object and returns JSON, or an [`AppError`] `{ code, message }` with a code
//! from a closed set. The unlocked [`Wallet`] lives here, in Rust; no reply ever carries a secret.
//!
//! This crate knows nothing of Tauri, HTTP or async: [`App::dispatch`] blocks (Argon2, the ledger), and
//! each transport runs it on a worker thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use custodia_core::consent::to_fhir_consent;
use custodia_core::entry::RequestId;
use custodia_core::grant::{GrantId, GrantRequest};
use custodia_core::labels::SensitivityLabel;
use custodia_core::purpose::{PURPOSE_CODES, PurposeOfUse};
use custodia_core::qr::{self, QrPayload};
use custodia_core::scope::Scope;
use custodia_core::time::Timestamp;
use custodia_core::{SigningPublicKey, statement::StatementError};
use custodia_wallet::ledger::LedgerError;
use custodia_wallet::notices::NoticePrefs;
use custodia_wallet::vault::{KdfParams, Passphrase, VaultError};
use custodia_wallet::wallet::{CheckedRequest, LockedWallet, Wallet, WalletError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

mod commands;
mod log;
mod news;
mod settings;
pub mod views;

pub use log::{LogIndex, MAX_PAGE};
pub use settings::{AppSettings, MAX_AUTO_LOCK_MINUTES};
use views::*;

/// Every command the UI may call, in one list that the Tauri capability file and the bridge share.
pub const COMMANDS: &[&str] = &[
    "status",
    "create_wallet",
    "unlock",
    "lock",
    "enroll",
    "network_profile",
    "join_network",
    "set_ledger_url",
    "change_passphrase",
    "set_auto_lock",
    "notice_prefs",
    "set_notice_prefs",
    "contact_qr",
    "purposes",
    "home",
    "grants",
    "grant",
    "contacts",
    "resolve_contact",
    "scan_image",
    "create_grant",
    "post_grant",
    "revoke_grant",
    "export_consent",
    "preview_grant",
    "own_records",
    "sync",
    "wait_news",
    "access_log",
    "access_proof",
    "export_access_csv",
    "export_audit_bundle",
    "open_request",
    "answer_request",
    "create_emergency_card",
    "guardians",
    "guardian_contact",
    "set_guardians",
    "remove_guardian",
    "check_guardians",
    "guardian_inbox",
    "approve_recovery",
    "cancel_recovery",
    "start_recovery",
    "recovery_status",
    "finish_recovery",
    "abandon_recovery",
];

/// The largest image `scan_image` takes, before base64.
pub const MAX_SCAN_IMAGE_BYTES: usize = 8 * 1024 * 1024;
/// Grants expiring within this many seconds are brought to the patient's attention.
const EXPIRING_SOON_SECONDS: i64 = 24 * 3600;
/// Reads shown on the home screen.
const RECENT_READS: usize = 8;

/// The closed set of error codes the UI switches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadInput,
    NoWallet,
    WalletExists,
    Locked,
    WrongPassphrase,
    Busy,
    NotEnrolled,
    NotFound,
    Conflict,
    LedgerUnreachable,
    LedgerRefused,
    VerificationFailed,
    Unauthorized,
    UnknownCommand,
    Internal,
}

/// What every command fails with: a code for the UI and a plain message for the patient. Messages
/// come from error types that never carry secrets.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, thiserror::Error, ts_rs::TS)]
#[error("{message}")]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError { code, message: message.into() }
    }

    fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadInput, message)
    }

    fn locked() -> Self {
        Self::new(ErrorCode::Locked, "the wallet is locked; unlock it with your passphrase")
    }
}

impl From<LedgerError> for AppError {
    fn from(e: LedgerError) -> Self {
        let code = if e.is_verification_failure() {
            ErrorCode::VerificationFailed
        } else {
            match &e {
                LedgerError::Transport { .. } | LedgerError::Status { .. } => ErrorCode::LedgerUnreachable,
                LedgerError::BadUrl { .. } | LedgerError::BadVerifierKey { .. } => ErrorCode::BadInput,
                LedgerError::NotAMember(_) => ErrorCode::NotFound,
                LedgerError::Statement(_) => ErrorCode::BadInput,
                _ => ErrorCode::LedgerRefused,
            }
        };
        AppError::new(code, e.to_string())
    }
}

impl From<WalletError> for AppError {
    fn from(e: WalletError) -> Self {
        let code = match &e {
            WalletError::Vault(VaultError::WrongPassphraseOrTampered) => ErrorCode::WrongPassphrase,
            WalletError::Vault(VaultError::EmptyPassphrase) => ErrorCode::BadInput,
            WalletError::Vault(VaultError::Locked) => ErrorCode::Busy,
            WalletError::Vault(_) | WalletError::Corrupt(_) => ErrorCode::Internal,
            WalletError::AlreadyExists(_) => ErrorCode::WalletExists,
            WalletError::NotFound(_) => ErrorCode::NoWallet,
            WalletError::BadName(_) | WalletError::Statement(_) => ErrorCode::BadInput,
            WalletError::UnknownGrant(_) | WalletError::UnknownAccessEvent(_) => ErrorCode::NotFound,
            WalletError::AlreadyRevoked(_)
            | WalletError::AlreadyEnrolled(_)
            | WalletError::AlreadyPosted { .. }
            | WalletError::GrantNotOnLedger(_)
            | WalletError::NotRevoked(_) => ErrorCode::Conflict,
            WalletError::NotEnrolled => ErrorCode::NotEnrolled,
            WalletError::Request(custodia_core::access_request::AccessRequestError::BadSignature(_))
            | WalletError::RequesterNotEnrolled(_)
            | WalletError::RequesterRole(_)
            | WalletError::NotForThisWallet(_) => ErrorCode::VerificationFailed,
            WalletError::Request(_) | WalletError::RequestElsewhere { .. } | WalletError::BadAnswer(_) => {
                ErrorCode::BadInput
            }
            WalletError::Guardians(_) | WalletError::WrongCode { .. } | WalletError::Shares(_) => ErrorCode::BadInput,
            WalletError::NoGuardians
            | WalletError::UnknownGuardian(_)
            | WalletError::UnknownRecoveryRequest(_)
            | WalletError::NotAPatient(_)
            | WalletError::NoGuardianSet(_) => ErrorCode::NotFound,
            WalletError::NotEnoughShares { .. }
            | WalletError::SupersededSet(_)
            | WalletError::RecoveryCancelled { .. }
            | WalletError::TooManyWrongCodes
            | WalletError::NotRecovering
            | WalletError::Retired { .. } => ErrorCode::Conflict,
            WalletError::RecoveredKeyMismatch(_) => ErrorCode::VerificationFailed,
            WalletError::Delivery { .. } => ErrorCode::LedgerRefused,
            WalletError::Ledger(_) => {
                let WalletError::Ledger(inner) = e else { unreachable!("matched just above") };
                return inner.into();
            }
        };
        // The wallet's own words point at the command line for these; the app says where to go instead.
        let message = match &e {
            WalletError::NotEnrolled => {
                "this wallet is not connected to a ledger yet; connect it in Settings".to_owned()
            }
            WalletError::NoGuardians => "this wallet has no guardians yet; choose them under Guardians".to_owned(),
            WalletError::UnknownRecoveryRequest(id) => {
                format!("no recovery request {id} is in your inbox; refresh the inbox and try again")
            }
            WalletError::NotRecovering => "this wallet is not recovering anyone".to_owned(),
            _ => e.to_string(),
        };
        AppError::new(code, message)
    }
}

impl From<custodia_wallet::fhir_client::FhirClientError> for AppError {
    fn from(e: custodia_wallet::fhir_client::FhirClientError) -> Self {
        use custodia_wallet::fhir_client::FhirClientError as E;
        let code = match &e {
            E::BadUrl(_) => ErrorCode::BadInput,
            E::Unreachable { .. } | E::Refused { .. } => ErrorCode::LedgerUnreachable,
            E::Refusal(_) | E::NotFhir { .. } | E::TooLarge => ErrorCode::Conflict,
        };
        AppError::new(code, e.to_string())
    }
}

impl From<StatementError> for AppError {
    fn from(e: StatementError) -> Self {
        AppError::bad_input(e.to_string())
    }
}

/// Where the wallet stands. A locked wallet keeps the directory's lock, so no other process writes it
/// while the app is open.
enum Session {
    /// Not opened yet, or there is no wallet.
    Closed,
    Locked(LockedWallet),
    Unlocked(Box<Unlocked>),
}

struct Unlocked {
    wallet: Wallet,
    /// The access log's query index, rebuilt whenever the events change.
    log: LogIndex,
    /// Requests scanned and checked, by id, until answered (a few at most: one per scan).
    requests: Vec<CheckedRequest>,
}

impl Unlocked {
    fn new(wallet: Wallet) -> Box<Unlocked> {
        let log = LogIndex::build(wallet.access_events(), members(&wallet));
        Box::new(Unlocked { wallet, log, requests: Vec::new() })
    }

    fn reindex(&mut self) {
        self.log = LogIndex::build(self.wallet.access_events(), members(&self.wallet));
    }
}

fn members(w: &Wallet) -> &[custodia_core::entry::Member] {
    w.ledger().map(|l| l.members.as_slice()).unwrap_or_default()
}

struct Inner {
    session: Session,
    last_activity: Instant,
}

/// One wallet directory, locked or unlocked, and the commands over it.
pub struct App {
    wallet_dir: PathBuf,
    default_ledger: Option<String>,
    kdf: KdfParams,
    inner: Mutex<Inner>,
    /// News of the log from the ledger's stream, waited on without `inner`.
    feed: news::Feed,
    /// This app, for the threads it starts.
    me: std::sync::Weak<App>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("wallet_dir", &self.wallet_dir).finish_non_exhaustive()
    }
}

fn args<T: DeserializeOwned>(value: Value) -> Result<T, AppError> {
    let value = if value.is_null() { json!({}) } else { value };
    serde_json::from_value(value).map_err(|e| AppError::bad_input(format!("bad arguments: {e}")))
}

fn to_json<T: serde::Serialize>(value: T) -> Result<Value, AppError> {
    serde_json::to_value(value).map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))
}

fn now() -> Result<Timestamp, AppError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| AppError::new(ErrorCode::Internal, "the system clock is before 1970"))?
        .as_secs();
    i64::try_from(secs)
        .ok()
        .and_then(|s| Timestamp::from_unix(s).ok())
        .ok_or_else(|| AppError::new(ErrorCode::Internal, "the system clock is not a usable time"))
}

fn passphrase(text: String) -> Result<Passphrase, AppError> {
    Passphrase::new(text).map_err(|e| AppError::bad_input(e.to_string()))
}

fn grant_id(text: &str) -> Result<GrantId, AppError> {
    text.parse().map_err(|_| AppError::bad_input(format!("{text:?} is not a grant id")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateArgs {
    name: String,
    passphrase: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PassphraseArgs {
    passphrase: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerArgs {
    ledger_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileArgs {
    /// The network profile's text (from its file, or its QR code read by `scan_image` or the camera).
    profile: String,
}

/// A network profile, or a message that says what is wrong with it.
fn parse_profile(text: &str) -> Result<custodia_wallet::network::NetworkProfile, AppError> {
    custodia_wallet::network::NetworkProfile::parse(text)
        .map_err(|e| AppError::bad_input(format!("this is not a Custodia network profile: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePassphraseArgs {
    current: String,
    new: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoLockArgs {
    minutes: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticePrefsArgs {
    kind: String,
    delivery: String,
}

/// Preferences that cannot be read or written: the file beside the vault is damaged or the disk refuses.
fn prefs_error(e: custodia_wallet::notices::PrefsError) -> AppError {
    AppError::new(ErrorCode::Internal, e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdArgs {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextArgs {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageArgs {
    image_base64: String,
}

/// A grant not yet given, and the hospital's gateway to preview it at.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewGrantArgs {
    gateway_url: String,
    grantee: String,
    scopes: Vec<String>,
    #[serde(default)]
    labels: Vec<String>,
    purpose: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayArgs {
    gateway_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGrantArgs {
    grantee: String,
    scopes: Vec<String>,
    #[serde(default)]
    labels: Vec<String>,
    purpose: String,
    duration_seconds: u64,
    #[serde(default)]
    max_reads: Option<u32>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogArgs {
    #[serde(default)]
    filter: AccessFilter,
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_page")]
    limit: usize,
}

fn default_page() -> usize {
    100
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterArgs {
    #[serde(default)]
    filter: AccessFilter,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexArgs {
    index: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyArgs {
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InboxArgs {
    #[serde(default)]
    ledger: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveArgs {
    request_id: String,
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRecoveryArgs {
    #[serde(default)]
    request_id: Option<String>,
}

impl App {
    pub fn new(wallet_dir: PathBuf, default_ledger: Option<String>) -> Arc<App> {
        Self::with_kdf(wallet_dir, default_ledger, KdfParams::DEFAULT)
    }

    /// As [`App::new`], with the Argon2 cost new wallets are made with (tests and benchmarks use
    /// [`KdfParams::TESTING`]).
    pub fn with_kdf(wallet_dir: PathBuf, default_ledger: Option<String>, kdf: KdfParams) -> Arc<App> {
        Arc::new_cyclic(|me| App {
            wallet_dir,
            default_ledger,
            kdf,
            inner: Mutex::new(Inner { session: Session::Closed, last_activity: Instant::now() }),
            feed: news::Feed::default(),
            me: me.clone(),
        })
    }

    pub fn wallet_dir(&self) -> &Path {
        &self.wallet_dir
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A command that panicked left the session as it was before its own write; keep serving.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn settings(&self) -> AppSettings {
        AppSettings::load(&self.wallet_dir)
    }

    /// Runs one command. It blocks (Argon2, network): call it from a worker thread, never a UI or async
    /// executor thread. Commands run one at a time.
    pub fn dispatch(&self, command: &str, args: Value) -> Result<Value, AppError> {
        // Waits for news without holding the wallet, so other commands run meanwhile.
        if command == "wait_news" {
            return self.wait_news(args);
        }
        let mut inner = self.inner();
        // The UI polls these on its own; only what the patient does keeps the wallet open.
        if !matches!(command, "status" | "sync") {
            inner.last_activity = Instant::now();
        }
        match command {
            "status" => self.status(&inner, args),
            "create_wallet" => self.create_wallet(&mut inner, args),
            "start_recovery" => self.start_recovery(&mut inner, args),
            "abandon_recovery" => self.abandon_recovery(&mut inner, args),
            "unlock" => self.unlock(&mut inner, args),
            "lock" => {
                let _: Empty = self::args(args)?;
                lock_session(&mut inner.session);
                Ok(json!({}))
            }
            "purposes" => {
                let _: Empty = self::args(args)?;
                to_json(
                    PURPOSE_CODES
                        .iter()
                        .map(|(code, display)| Code { code: (*code).into(), display: (*display).into() })
                        .collect::<Vec<_>>(),
                )
            }
            "set_auto_lock" => {
                let AutoLockArgs { minutes } = self::args(args)?;
                let u = unlocked(&mut inner)?;
                let settings = AppSettings { auto_lock_minutes: minutes };
                settings.save(&self.wallet_dir)?;
                to_json(summary(&u.wallet, settings.auto_lock_minutes))
            }
            "notice_prefs" => {
                let _: Empty = self::args(args)?;
                unlocked(&mut inner)?;
                to_json(views::notice_prefs_view(&NoticePrefs::load(&self.wallet_dir).map_err(prefs_error)?))
            }
            "set_notice_prefs" => {
                let NoticePrefsArgs { kind, delivery } = self::args(args)?;
                unlocked(&mut inner)?;
                let mut prefs = NoticePrefs::load(&self.wallet_dir).map_err(prefs_error)?;
                prefs.set(&format!("{kind}={delivery}")).map_err(|e| AppError::bad_input(e.to_string()))?;
                prefs.save(&self.wallet_dir).map_err(prefs_error)?;
                to_json(views::notice_prefs_view(&prefs))
            }
            "network_profile" => {
                let ProfileArgs { profile } = self::args(args)?;
                to_json(views::network_view(&parse_profile(&profile)?))
            }
            "scan_image" => {
                let ImageArgs { image_base64 } = self::args(args)?;
                if image_base64.len() > MAX_SCAN_IMAGE_BYTES.div_ceil(3) * 4 {
                    return Err(AppError::bad_input(format!(
                        "the image is larger than {} MiB",
                        MAX_SCAN_IMAGE_BYTES >> 20
                    )));
                }
                let bytes = data_encoding::BASE64
                    .decode(image_base64.trim().as_bytes())
                    .map_err(|_| AppError::bad_input("the image is not valid base64"))?;
                let text = qr::decode_image(&bytes).map_err(|e| AppError::bad_input(e.to_string()))?;
                to_json(Decoded { text })
            }
            _ if COMMANDS.contains(&command) => {
                let settings = self.settings();
                let u = unlocked(&mut inner)?;
                unlocked_command(u, command, args, &settings)
            }
            _ => Err(AppError::new(ErrorCode::UnknownCommand, format!("unknown command {command:?}"))),
        }
    }

    fn status(&self, inner: &Inner, args: Value) -> Result<Value, AppError> {
        let _: Empty = self::args(args)?;
        let settings = self.settings();
        let (state, summary) = match &inner.session {
            Session::Unlocked(u) => {
                (WalletState::Unlocked, Some(views::summary(&u.wallet, settings.auto_lock_minutes)))
            }
            Session::Locked(_) => (WalletState::Locked, None),
            Session::Closed if self.wallet_dir.join(custodia_wallet::vault::VAULT_FILE_NAME).exists() => {
                (WalletState::Locked, None)
            }
            Session::Closed => (WalletState::None, None),
        };
        to_json(Status {
            state,
            wallet_dir: self.wallet_dir.display().to_string(),
            default_ledger: self.default_ledger.clone(),
            auto_lock_minutes: settings.auto_lock_minutes,
            summary,
        })
    }

    fn create_wallet(&self, inner: &mut Inner, args: Value) -> Result<Value, AppError> {
        let CreateArgs { name, passphrase: text } = self::args(args)?;
        if !matches!(inner.session, Session::Closed) {
            return Err(AppError::new(ErrorCode::WalletExists, "this app already has a wallet open"));
        }
        let wallet = Wallet::create(&self.wallet_dir, name.trim(), passphrase(text)?, self.kdf, now()?)?;
        let reply = to_json(summary(&wallet, self.settings().auto_lock_minutes));
        inner.session = Session::Unlocked(Unlocked::new(wallet));
        reply
    }

    /// A new device: makes the wallet (like `create_wallet`) as a one-time device key, asks the patient's
    /// guardians for help on the ledger, and leaves the session unlocked in recovering mode.
    fn start_recovery(&self, inner: &mut Inner, args: Value) -> Result<Value, AppError> {
        let StartRecoveryArgs { ledger_url, patient_key, passphrase: text, verifier_key } = self::args(args)?;
        if !matches!(inner.session, Session::Closed) {
            return Err(AppError::new(ErrorCode::WalletExists, "this app already has a wallet open"));
        }
        let patient: SigningPublicKey = patient_key.trim().parse().map_err(|_| {
            AppError::bad_input(
                "the patient key is not valid: it starts with cusig1 (on your contact card, or ask a guardian)",
            )
        })?;
        let pass = passphrase(text)?;
        let vault = self.wallet_dir.join(custodia_wallet::vault::VAULT_FILE_NAME);
        if vault.exists() {
            return Err(AppError::new(ErrorCode::WalletExists, "there is already a wallet on this device"));
        }
        let (url, verifier_key) = (ledger_url.trim(), verifier_key.as_deref().map(str::trim).filter(|k| !k.is_empty()));
        let started =
            Wallet::start_recovery(&self.wallet_dir, pass, self.kdf, url, verifier_key, None, &patient, now()?);
        let (wallet, progress) = match started {
            Ok(started) => started,
            Err(e) => {
                // The wallet made for the attempt holds only a fresh device key, never the patient's, and no
                // recovery state: removed, so the patient can try again (or create a wallet) on this device.
                // (Not when the wallet could not be made because another process holds or just made one.)
                if !matches!(e, WalletError::AlreadyExists(_) | WalletError::Vault(VaultError::Locked)) {
                    remove_vault(&vault);
                }
                return Err(e.into());
            }
        };
        let reply = to_json(RecoveryStarted {
            summary: summary(&wallet, self.settings().auto_lock_minutes),
            progress: views::RecoveryProgress::of(&progress),
        });
        inner.session = Session::Unlocked(Unlocked::new(wallet));
        reply
    }

    /// Gives up the recovery under way on this device and removes its wallet (a fresh device key, never
    /// the patient's), so the device is back to a first run.
    fn abandon_recovery(&self, inner: &mut Inner, args: Value) -> Result<Value, AppError> {
        let _: Empty = self::args(args)?;
        if !unlocked(inner)?.wallet.is_recovering() {
            return Err(WalletError::NotRecovering.into());
        }
        if let Session::Unlocked(u) = std::mem::replace(&mut inner.session, Session::Closed) {
            u.wallet.abandon_recovery()?;
        }
        Ok(json!({}))
    }

    fn unlock(&self, inner: &mut Inner, args: Value) -> Result<Value, AppError> {
        let PassphraseArgs { passphrase: text } = self::args(args)?;
        let pass = passphrase(text)?;
        let session = std::mem::replace(&mut inner.session, Session::Closed);
        let wallet = match session {
            Session::Unlocked(u) => {
                inner.session = Session::Unlocked(u);
                return Err(AppError::new(ErrorCode::Conflict, "the wallet is already unlocked"));
            }
            Session::Locked(locked) => match locked.unlock(pass) {
                Ok(w) => w,
                Err((locked, e)) => {
                    inner.session = Session::Locked(locked);
                    return Err(e.into());
                }
            },
            Session::Closed => Wallet::open(&self.wallet_dir, pass)?,
        };
        let reply = to_json(summary(&wallet, self.settings().auto_lock_minutes));
        inner.session = Session::Unlocked(Unlocked::new(wallet));
        reply
    }

    /// Locks the wallet if it has been idle past its auto-lock time; true if it locked it.
    pub fn lock_if_idle(&self) -> bool {
        let minutes = self.settings().auto_lock_minutes;
        let mut inner = self.inner();
        let idle = inner.last_activity.elapsed() >= Duration::from_secs(u64::from(minutes) * 60);
        if idle && matches!(inner.session, Session::Unlocked(_)) {
            lock_session(&mut inner.session);
            return true;
        }
        false
    }

    /// Starts a thread that locks the wallet once it has been idle past its auto-lock time. It ends
    /// when the app is dropped.
    pub fn spawn_idle_locker(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let app = Arc::downgrade(self);
        std::thread::spawn(move || {
            while let Some(app) = app.upgrade() {
                app.lock_if_idle();
                drop(app);
                std::thread::sleep(Duration::from_secs(5));
            }
        })
    }
}

/// Drops every secret; the directory stays locked for this process.
fn lock_session(session: &mut Session) {
    *session = match std::mem::replace(session, Session::Closed) {
        Session::Unlocked(u) => Session::Locked(u.wallet.lock()),
        other => other,
    };
}

fn unlocked(inner: &mut Inner) -> Result<&mut Unlocked, AppError> {
    match &mut inner.session {
        Session::Unlocked(u) => Ok(u),
        _ => Err(AppError::locked()),
    }
}

/// Removes a vault this app just made for a recovery that did not start.
fn remove_vault(vault: &Path) {
    if let Err(e) = std::fs::remove_file(vault)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("custodia: could not remove the wallet made for a failed recovery ({}): {e}", vault.display());
    }
}

fn unlocked_command(u: &mut Unlocked, command: &str, args: Value, settings: &AppSettings) -> Result<Value, AppError> {
    let call = commands::Call { u, args, settings, now: now()? };
    match command {
        "enroll" | "join_network" | "set_ledger_url" | "change_passphrase" | "contact_qr" | "home" | "sync" => {
            commands::home::run(command, call)
        }
        "grants" | "grant" | "contacts" | "resolve_contact" | "create_grant" | "post_grant" | "revoke_grant"
        | "export_consent" | "preview_grant" | "own_records" => commands::grants::run(command, call),
        "open_request" | "answer_request" | "create_emergency_card" => commands::care::run(command, call),
        "access_log" | "access_proof" | "export_access_csv" | "export_audit_bundle" => {
            commands::access_log::run(command, call)
        }
        "guardians" | "guardian_contact" | "set_guardians" | "remove_guardian" | "check_guardians"
        | "cancel_recovery" | "guardian_inbox" | "approve_recovery" | "recovery_status" | "finish_recovery" => {
            commands::recovery::run(command, call)
        }
        _ => Err(unknown_command(command)),
    }
}

fn unknown_command(command: &str) -> AppError {
    AppError::new(ErrorCode::UnknownCommand, format!("unknown command {command:?}"))
}

#[cfg(test)]
mod tests;
