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
use custodia_wallet::vault::{KdfParams, Passphrase, VaultError};
use custodia_wallet::wallet::{CheckedRequest, GuardianContact, LockedWallet, Wallet, WalletError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

mod log;
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
    "set_ledger_url",
    "change_passphrase",
    "set_auto_lock",
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
    "sync",
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
        Arc::new(App {
            wallet_dir,
            default_ledger,
            kdf,
            inner: Mutex::new(Inner { session: Session::Closed, last_activity: Instant::now() }),
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
        let started = Wallet::start_recovery(&self.wallet_dir, pass, self.kdf, url, verifier_key, &patient, now()?);
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
        let u = unlocked(inner)?;
        if !u.wallet.is_recovering() {
            return Err(WalletError::NotRecovering.into());
        }
        u.wallet.abandon_recovery()?;
        // Dropping the wallet releases the directory's lock before its vault goes.
        inner.session = Session::Closed;
        let vault = self.wallet_dir.join(custodia_wallet::vault::VAULT_FILE_NAME);
        std::fs::remove_file(&vault)
            .map_err(|e| AppError::new(ErrorCode::Internal, format!("could not remove the unused wallet: {e}")))?;
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

/// A guardian named by a contact card's QR text or by signing key.
fn guardian_of(w: &mut Wallet, text: &str) -> Result<(GuardianContact, bool), AppError> {
    let text = text.trim();
    let (contact, from_card) = match text.parse::<SigningPublicKey>() {
        Ok(key) => (w.guardian_contact(&key)?, false),
        Err(_) => match QrPayload::decode(text) {
            Ok(QrPayload::Contact(card)) => (GuardianContact::from(card), true),
            Ok(_) => return Err(AppError::bad_input("that Custodia QR code is not a contact card")),
            Err(e) => {
                return Err(AppError::bad_input(format!("that is neither a contact card nor a Custodia key: {e}")));
            }
        },
    };
    if contact.key == w.signing_key() {
        return Err(AppError::bad_input("that is this wallet's own contact card: you cannot be your own guardian"));
    }
    Ok((contact, from_card))
}

fn guardians_view(w: &Wallet) -> Guardians {
    use custodia_core::recovery::{DEFAULT_WAITING_SECONDS, MAX_GUARDIANS, MAX_WAITING_SECONDS, MIN_GUARDIANS};
    Guardians {
        set: w.guardian_set().as_ref().map(GuardianSet::of),
        held: w.held_shares().iter().map(HeldShare::of).collect(),
        alerts: w.recovery_alerts().iter().map(views::RecoveryAlert::of).collect(),
        retired: w.retired().map(|r| RetiredView {
            index: r.index as i64,
            at: ms(r.at),
            successor: r.successor.to_string(),
        }),
        default_thresholds: (MIN_GUARDIANS..=MAX_GUARDIANS).map(custodia_core::recovery::default_threshold).collect(),
        default_waiting_seconds: DEFAULT_WAITING_SECONDS,
        max_waiting_seconds: MAX_WAITING_SECONDS,
    }
}

fn request_id(text: &str) -> Result<RequestId, AppError> {
    text.trim().parse().map_err(|_| AppError::bad_input(format!("{text:?} is not a recovery request id")))
}

/// Scanned requests the app keeps for an answer.
const MAX_PENDING_REQUESTS: usize = 8;

fn request_view(checked: &CheckedRequest) -> AccessRequestView {
    let (r, m) = (&checked.request, &checked.requester);
    AccessRequestView {
        id: r.id.to_string(),
        requester: Party::member(m),
        fingerprint: custodia_core::Fingerprint::of(&m.key, &m.box_key).to_string(),
        purpose: Code { code: r.purpose.code().to_owned(), display: r.purpose.display().to_owned() },
        scopes: r.scopes.iter().map(ToString::to_string).collect(),
        duration_seconds: r.duration_seconds,
        created_at: ms(r.created_at),
        expires_at: ms(r.expires_at()),
    }
}

fn grant_view(u: &Unlocked, id: GrantId, now: Timestamp) -> Result<GrantView, AppError> {
    let g = u.wallet.grant(id).ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no grant {id}")))?;
    Ok(GrantView::of(g, members(&u.wallet), u.log.grant_counts(&id.to_string()), now))
}

fn contact_of(party: Party, w: &Wallet) -> Contact {
    let key: Option<SigningPublicKey> = party.key.parse().ok();
    let last_granted = w
        .grants()
        .iter()
        .filter(|g| Some(g.grant.grantee) == key)
        .map(|g| ms(g.grant.issued_at))
        .fold(None, |a: Option<i64>, t| Some(a.map_or(t, |a| a.max(t))));
    let fingerprint = w
        .ledger()
        .and_then(|l| l.members.iter().find(|m| Some(m.key) == key))
        .map(|m| {
            custodia_core::qr::ContactCard { name: m.name.clone(), signing: m.key, boxing: m.box_key }
                .fingerprint()
                .to_string()
        })
        .unwrap_or_default();
    Contact { party, fingerprint, last_granted }
}

fn unlocked_command(u: &mut Unlocked, command: &str, args: Value, settings: &AppSettings) -> Result<Value, AppError> {
    let now = now()?;
    match command {
        "enroll" => {
            let LedgerArgs { ledger_url } = self::args(args)?;
            u.wallet.enroll(ledger_url.trim(), None, now)?;
            to_json(summary(&u.wallet, settings.auto_lock_minutes))
        }
        "set_ledger_url" => {
            let LedgerArgs { ledger_url } = self::args(args)?;
            u.wallet.move_ledger(ledger_url.trim())?;
            to_json(summary(&u.wallet, settings.auto_lock_minutes))
        }
        "change_passphrase" => {
            let ChangePassphraseArgs { current, new } = self::args(args)?;
            let current = passphrase(current)?;
            // The current passphrase must open the vault as it is on disk; a walk-up attacker at an
            // unlocked screen cannot change it.
            let file =
                custodia_wallet::vault::read_vault(&u.wallet.dir().join(custodia_wallet::vault::VAULT_FILE_NAME))
                    .map_err(WalletError::from)?;
            custodia_wallet::vault::open(&file, &current).map_err(WalletError::from)?;
            u.wallet.change_passphrase(passphrase(new)?)?;
            Ok(json!({}))
        }
        "contact_qr" => {
            let _: Empty = self::args(args)?;
            let text = QrPayload::Contact(u.wallet.contact_card()).encode();
            let svg = qr::render_svg(&text).map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?;
            to_json(QrView { text, svg })
        }
        "home" => {
            let _: Empty = self::args(args)?;
            to_json(home(u, now))
        }
        "grants" => {
            let _: Empty = self::args(args)?;
            let mut views: Vec<GrantView> = u
                .wallet
                .grants()
                .iter()
                .map(|g| GrantView::of(g, members(&u.wallet), u.log.grant_counts(&g.grant.id.to_string()), now))
                .collect();
            views.sort_by_key(|v| std::cmp::Reverse(v.issued_at));
            to_json(views)
        }
        "grant" => {
            let IdArgs { id } = self::args(args)?;
            let id = grant_id(&id)?;
            let grant = grant_view(u, id, now)?;
            let filter = AccessFilter { grant_id: Some(id.to_string()), ..AccessFilter::default() };
            let events = u.wallet.access_events();
            let reads = u.log.positions(&filter).map(|p| AccessRow::of(&events[p], members(&u.wallet))).collect();
            to_json(GrantDetail { grant, reads })
        }
        "contacts" => {
            let _: Empty = self::args(args)?;
            let w = &u.wallet;
            let mut contacts: Vec<Contact> = members(w)
                .iter()
                .filter(|m| m.role != custodia_core::entry::Role::Gateway)
                .map(|m| contact_of(Party::member(m), w))
                .collect();
            contacts.sort_by_key(|c| std::cmp::Reverse(c.last_granted));
            to_json(contacts)
        }
        "resolve_contact" => {
            let TextArgs { text } = self::args(args)?;
            let text = text.trim();
            let key: SigningPublicKey = match text.parse() {
                Ok(key) => key,
                Err(_) => match QrPayload::decode(text) {
                    Ok(QrPayload::Contact(card)) => card.signing,
                    Ok(_) => return Err(AppError::bad_input("that Custodia QR code is not a contact card")),
                    Err(e) => {
                        return Err(AppError::bad_input(format!(
                            "that is neither a contact card nor a Custodia key: {e}"
                        )));
                    }
                },
            };
            if key == u.wallet.signing_key() {
                return Err(AppError::bad_input("that is this wallet's own contact card"));
            }
            let member = u.wallet.member(&key)?;
            if member.role == custodia_core::entry::Role::Gateway {
                return Err(AppError::bad_input(format!(
                    "{} is a gateway, not a clinician: gateways enforce grants but are not given them",
                    member.name
                )));
            }
            u.reindex();
            to_json(contact_of(Party::member(&member), &u.wallet))
        }
        "create_grant" => {
            let a: CreateGrantArgs = self::args(args)?;
            let request = grant_request(a)?;
            if u.wallet.ledger().is_none() {
                return Err(AppError::new(
                    ErrorCode::NotEnrolled,
                    "connect this wallet to a ledger first (Settings), so the grant can be posted",
                ));
            }
            // The grantee must be an enrolled member before anything is signed.
            u.wallet.member(&request.grantee)?;
            let grant = u.wallet.issue_grant(request, now)?;
            // Stored first, so a failed post leaves a grant the patient can post again from Home.
            u.wallet.post_grant(grant.id, now)?;
            to_json(grant_view(u, grant.id, now)?)
        }
        "open_request" => {
            let TextArgs { text } = self::args(args)?;
            let signed = match QrPayload::decode(text.trim()) {
                Ok(QrPayload::AccessRequest(r)) => r,
                Ok(QrPayload::Contact(_)) => {
                    return Err(AppError::bad_input("that is a contact card: use it to grant access from New grant"));
                }
                Ok(QrPayload::EmergencyCard(_)) => {
                    return Err(AppError::bad_input("that is an emergency card, for emergency staff to scan"));
                }
                Ok(_) => return Err(AppError::bad_input("this kind of Custodia QR code is not a request")),
                Err(e) => return Err(AppError::bad_input(format!("not an access request: {e}"))),
            };
            let checked = u.wallet.check_access_request(&signed, now)?;
            let view = request_view(&checked);
            u.requests.retain(|r| r.request.id != checked.request.id);
            u.requests.push(checked);
            let excess = u.requests.len().saturating_sub(MAX_PENDING_REQUESTS);
            u.requests.drain(..excess);
            to_json(view)
        }
        "answer_request" => {
            let a: AnswerRequestArgs = self::args(args)?;
            let position = u.requests.iter().position(|r| r.request.id.to_string() == a.id).ok_or_else(|| {
                AppError::new(ErrorCode::NotFound, "no such request waiting for an answer; scan it again")
            })?;
            let checked = u.requests[position].clone();
            let approval = if a.approve {
                let scopes = match a.scopes {
                    Some(s) => s
                        .iter()
                        .map(|t| t.parse::<Scope>().map_err(|e| AppError::bad_input(e.to_string())))
                        .collect::<Result<Vec<_>, _>>()?,
                    None => checked.request.scopes.clone(),
                };
                Some((scopes, a.duration_seconds.unwrap_or(checked.request.duration_seconds)))
            } else {
                None
            };
            let grant = u.wallet.answer_access_request(&checked, approval, now)?;
            u.requests.remove(position);
            let grant = grant.map(|g| grant_view(u, g.id, now)).transpose()?;
            to_json(RequestAnswer { approved: a.approve, grant })
        }
        "create_emergency_card" => {
            let a: EmergencyCardArgs = self::args(args)?;
            let labels = a.labels.unwrap_or_default();
            let scopes = a
                .scopes
                .iter()
                .map(|t| t.parse::<Scope>().map_err(|e| AppError::bad_input(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            if scopes.is_empty() {
                return Err(AppError::bad_input("choose at least one kind of record for the card"));
            }
            let parsed_labels = labels
                .iter()
                .map(|t| t.parse::<SensitivityLabel>().map_err(|e| AppError::bad_input(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            custodia_core::grant::check_duration(a.duration_seconds)?;
            let name = a.name.unwrap_or_else(|| u.wallet.name().to_owned());
            let (card, grant, _) = u.wallet.create_emergency_card(scopes, parsed_labels, a.duration_seconds, now)?;
            let text = QrPayload::EmergencyCard(card).encode();
            let face = custodia_core::printable::CardFace {
                name,
                covers: custodia_core::printable::covered_words(&a.scopes, &labels),
                valid_until: grant.not_after.to_string().chars().take(10).collect(),
            };
            let render = |e: custodia_core::qr::QrError| AppError::bad_input(e.to_string());
            let view = EmergencyCardView {
                grant: grant_view(u, grant.id, now)?,
                svg: custodia_core::printable::card_svg(&text, &face).map_err(render)?,
                png_base64: data_encoding::BASE64
                    .encode(&custodia_core::printable::card_png(&text, &face).map_err(render)?),
                pdf_base64: data_encoding::BASE64
                    .encode(&custodia_core::printable::card_pdf(&text, &face).map_err(render)?),
            };
            to_json(view)
        }
        "post_grant" => {
            let IdArgs { id } = self::args(args)?;
            let id = grant_id(&id)?;
            u.wallet.post_grant(id, now)?;
            to_json(grant_view(u, id, now)?)
        }
        "revoke_grant" => {
            let IdArgs { id } = self::args(args)?;
            let id = grant_id(&id)?;
            let held =
                u.wallet.grant(id).ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no grant {id}")))?;
            let (revoked, posted, on_ledger) =
                (held.revocation.is_some(), held.revocation_index.is_some(), held.grant_index.is_some());
            if !revoked {
                u.wallet.revoke_grant(id, now, "revoked by the patient")?;
            } else if posted {
                return Err(WalletError::AlreadyRevoked(id).into());
            }
            if on_ledger {
                u.wallet.post_revocation(id, now)?;
            }
            to_json(grant_view(u, id, now)?)
        }
        "export_consent" => {
            let IdArgs { id } = self::args(args)?;
            let id = grant_id(&id)?;
            let g = u.wallet.grant(id).ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no grant {id}")))?;
            let consent = to_fhir_consent(&g.grant);
            to_json(Export {
                filename: format!("custodia-consent-{id}.fhir.json"),
                content_type: "application/fhir+json".into(),
                text: serde_json::to_string_pretty(&consent).unwrap_or_default(),
            })
        }
        "sync" => {
            let _: Empty = self::args(args)?;
            let report = u.wallet.sync(now)?;
            if !report.new_access_events.is_empty() || report.new_entries > 0 {
                u.reindex();
            }
            let members = members(&u.wallet);
            to_json(SyncResult {
                checkpoint_size: report.checkpoint_size as i64,
                new_events: report.new_access_events.iter().map(|a| AccessRow::of(a, members)).collect(),
                complete: report.complete,
                new_recovery_alerts: report.new_recovery_requests.iter().map(views::RecoveryAlert::of).collect(),
            })
        }
        "access_log" => {
            let LogArgs { filter, offset, limit } = self::args(args)?;
            if !(1..=MAX_PAGE).contains(&limit) {
                return Err(AppError::bad_input(format!("limit must be 1 to {MAX_PAGE}")));
            }
            to_json(u.log.page(&filter, offset, limit, u.wallet.access_events(), members(&u.wallet)))
        }
        "access_proof" => {
            let IndexArgs { index } = self::args(args)?;
            let shown = u.wallet.access_inclusion(index)?;
            to_json(Proof {
                index: shown.index as i64,
                leaf_hash: shown.leaf.to_string(),
                checkpoint_size: shown.checkpoint.size as i64,
                root: shown.checkpoint.root.to_string(),
                checkpoint: shown.checkpoint.note.clone(),
                path: shown.path.iter().map(ToString::to_string).collect(),
                verified: true,
            })
        }
        "export_access_csv" => {
            let FilterArgs { filter } = self::args(args)?;
            let positions: Vec<usize> = u.log.positions(&filter).collect();
            to_json(log::export_csv(&positions, u.wallet.access_events(), members(&u.wallet)))
        }
        "export_audit_bundle" => {
            let FilterArgs { filter } = self::args(args)?;
            let positions: Vec<usize> = u.log.positions(&filter).collect();
            to_json(log::export_audit_bundle(&positions, u.wallet.access_events()))
        }
        "guardians" => {
            let _: Empty = self::args(args)?;
            to_json(guardians_view(&u.wallet))
        }
        "guardian_contact" => {
            let TextArgs { text } = self::args(args)?;
            let (c, from_card) = guardian_of(&mut u.wallet, &text)?;
            to_json(GuardianCandidate {
                fingerprint: custodia_core::Fingerprint::of(&c.key, &c.box_key).to_string(),
                name: c.name,
                key: c.key.to_string(),
                from_card,
            })
        }
        "set_guardians" => {
            let a: SetGuardiansArgs = self::args(args)?;
            let most = custodia_core::recovery::MAX_GUARDIANS;
            if a.contacts.len() > usize::from(most) {
                return Err(AppError::bad_input(format!("choose at most {most} guardians")));
            }
            let mut contacts = Vec::with_capacity(a.contacts.len());
            for text in &a.contacts {
                contacts.push(guardian_of(&mut u.wallet, text)?.0);
            }
            let count = u8::try_from(contacts.len()).unwrap_or(u8::MAX);
            let threshold = a.threshold.unwrap_or_else(|| custodia_core::recovery::default_threshold(count));
            let waiting = a.waiting_seconds.unwrap_or(custodia_core::recovery::DEFAULT_WAITING_SECONDS);
            u.wallet.set_guardians(contacts, threshold, waiting, now)?;
            to_json(guardians_view(&u.wallet))
        }
        "remove_guardian" => {
            let KeyArgs { key } = self::args(args)?;
            let key: SigningPublicKey =
                key.trim().parse().map_err(|_| AppError::bad_input("that is not a guardian's key"))?;
            u.wallet.remove_guardian(&key, now)?;
            to_json(guardians_view(&u.wallet))
        }
        "check_guardians" => {
            let _: Empty = self::args(args)?;
            u.wallet.check_guardians(now)?;
            to_json(guardians_view(&u.wallet))
        }
        "cancel_recovery" => {
            let CancelRecoveryArgs { request_id: only } = self::args(args)?;
            let only = only.as_deref().map(request_id).transpose()?;
            let cancelled = u.wallet.cancel_recovery(only, now)?;
            to_json(RecoveryCancelled { cancelled: cancelled.iter().map(ToString::to_string).collect() })
        }
        "guardian_inbox" => {
            let InboxArgs { ledger } = self::args(args)?;
            let ledger = ledger.as_deref().map(str::trim).filter(|l| !l.is_empty());
            let inbox = u.wallet.guardian_inbox(ledger, now)?;
            to_json(GuardianInbox::of(&inbox))
        }
        "approve_recovery" => {
            let ApproveArgs { request_id: id, code } = self::args(args)?;
            let id = request_id(&id)?;
            let code = code.trim();
            if code.is_empty() {
                return Err(AppError::bad_input("type the six-digit code the patient reads from their new device"));
            }
            let r = u.wallet.approve_recovery(id, code, now)?;
            to_json(views::InboxRequest::of(&r))
        }
        "recovery_status" => {
            let _: Empty = self::args(args)?;
            to_json(views::RecoveryProgress::of(&u.wallet.recovery_status()?))
        }
        "finish_recovery" => {
            let _: Empty = self::args(args)?;
            let outcome = u.wallet.finish_recovery(now)?;
            // The restored wallet knows its grantees by key only: look each up again (as enrolled members,
            // checked against the authority's enrollment), so grants show names. Best effort: one that cannot
            // be found now stays a key, as it would for any grant to someone no longer enrolled.
            let mut grantees: Vec<SigningPublicKey> =
                u.wallet.grants().iter().filter(|g| !g.grant.emergency_card).map(|g| g.grant.grantee).collect();
            grantees.sort_by_key(ToString::to_string);
            grantees.dedup();
            for key in grantees {
                let _ = u.wallet.member(&key);
            }
            u.reindex();
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            to_json(RecoveryFinished {
                summary: summary(&u.wallet, settings.auto_lock_minutes),
                patient: outcome.patient.to_string(),
                grants: count(outcome.grants),
                access_events: count(outcome.access_events),
                guardians: count(outcome.guardians),
            })
        }
        _ => Err(AppError::new(ErrorCode::UnknownCommand, format!("unknown command {command:?}"))),
    }
}

fn grant_request(a: CreateGrantArgs) -> Result<GrantRequest, AppError> {
    let grantee: SigningPublicKey = a
        .grantee
        .trim()
        .parse()
        .map_err(|_| AppError::bad_input("choose a clinician: the grantee key is not valid"))?;
    if a.scopes.is_empty() {
        return Err(AppError::bad_input("choose at least one kind of record to share"));
    }
    let scopes = a
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>().map_err(|e| AppError::bad_input(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_labels = a
        .labels
        .iter()
        .map(|l| l.parse::<SensitivityLabel>().map_err(|e| AppError::bad_input(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let purpose: PurposeOfUse =
        a.purpose.parse().map_err(|e: custodia_core::purpose::UnknownPurpose| AppError::bad_input(e.to_string()))?;
    if a.duration_seconds < 60 {
        return Err(AppError::bad_input("a grant must last at least a minute"));
    }
    custodia_core::grant::check_duration(a.duration_seconds)?;
    if a.max_reads == Some(0) {
        return Err(AppError::bad_input("a grant that allows no reads is not a grant; leave the limit empty instead"));
    }
    Ok(GrantRequest {
        grantee,
        scopes,
        allowed_labels,
        purpose,
        duration_seconds: a.duration_seconds,
        max_reads: a.max_reads,
        note: a.note.unwrap_or_default().trim().to_owned(),
    })
}

fn home(u: &Unlocked, now: Timestamp) -> Home {
    let w = &u.wallet;
    let members = members(w);
    let events = w.access_events();
    let mut active_grants: Vec<GrantView> = w
        .grants()
        .iter()
        .filter(|g| g.standing(now) == custodia_wallet::wallet::GrantStanding::Active)
        .map(|g| GrantView::of(g, members, u.log.grant_counts(&g.grant.id.to_string()), now))
        .collect();
    active_grants.sort_by_key(|g| g.not_after);
    let all = AccessFilter::default();
    let recent: Vec<usize> = u.log.positions(&all).take(RECENT_READS).collect();
    let recent_reads: Vec<AccessRow> = recent.iter().map(|&p| AccessRow::of(&events[p], members)).collect();
    let mut attention = Vec::new();
    match w.ledger() {
        None => attention.push(Attention {
            kind: AttentionKind::NotEnrolled,
            message:
                "This wallet is not connected to a ledger yet, so grants cannot be posted and reads cannot be seen."
                    .into(),
            grant_id: None,
            index: None,
        }),
        Some(l) if l.synced_through.is_none() && l.access_events.is_empty() && !w.grants().is_empty() => attention
            .push(Attention {
                kind: AttentionKind::NeverSynced,
                message: "The access log has not been checked against the ledger yet.".into(),
                grant_id: None,
                index: None,
            }),
        Some(_) => {}
    }
    if let Some(r) = w.retired() {
        attention.push(Attention {
            kind: AttentionKind::Retired,
            message: format!(
                "This wallet was recovered on another device on {}; this copy can no longer act for you.",
                r.at.to_string().chars().take(10).collect::<String>()
            ),
            grant_id: None,
            index: Some(r.index as i64),
        });
    }
    for a in w.recovery_alerts().iter().filter(|a| a.cancelled_at.is_none()) {
        attention.push(Attention {
            kind: AttentionKind::RecoveryRequest,
            message: "Someone asked your guardians to recover this wallet on another device. If it was not you, \
                      cancel it now."
                .into(),
            grant_id: None,
            index: Some(a.index as i64),
        });
    }
    for g in w.grants() {
        let id = g.grant.id.to_string();
        if g.grant_index.is_none()
            && g.revocation.is_none()
            && g.standing(now) == custodia_wallet::wallet::GrantStanding::Active
        {
            attention.push(Attention {
                kind: AttentionKind::Unposted,
                message: "A grant is signed but not on the ledger yet, so gateways will not honour it.".into(),
                grant_id: Some(id.clone()),
                index: None,
            });
        }
        if g.revocation.is_some() && g.revocation_index.is_none() && g.grant_index.is_some() {
            attention.push(Attention {
                kind: AttentionKind::Unposted,
                message: "A revocation is signed but not on the ledger yet: the grant still works until it is posted."
                    .into(),
                grant_id: Some(id.clone()),
                index: None,
            });
        }
        let left = g.grant.not_after.seconds_since(now);
        if g.standing(now) == custodia_wallet::wallet::GrantStanding::Active && left <= EXPIRING_SOON_SECONDS {
            attention.push(Attention {
                kind: AttentionKind::Expiring,
                message: format!(
                    "A grant to {} ends within a day.",
                    Party::of(&g.grant.grantee, members).name.unwrap_or_else(|| "a clinician".into())
                ),
                grant_id: Some(id),
                index: None,
            });
        }
    }
    // Break-glass reads and refused attempts of the last 30 days, newest first, at most ten.
    let since = AccessFilter { from: Some(ms(now) - 30 * 86_400_000), ..AccessFilter::default() };
    for p in u.log.positions(&since) {
        if attention.iter().filter(|a| matches!(a.kind, AttentionKind::BreakGlass | AttentionKind::Denied)).count()
            >= 10
        {
            break;
        }
        let e = events[p].event.statement();
        let (kind, message) = if e.break_glass {
            (
                AttentionKind::BreakGlass,
                format!("{} at {} used emergency access to your records.", e.reader_name, e.organisation),
            )
        } else if e.outcome == custodia_core::entry::Outcome::Denied {
            (
                AttentionKind::Denied,
                format!("{} at {} tried to read your records and was refused.", e.reader_name, e.organisation),
            )
        } else {
            continue;
        };
        attention.push(Attention {
            kind,
            message,
            grant_id: e.grant_id.map(|g| g.to_string()),
            index: Some(events[p].index as i64),
        });
    }
    Home { active_grants, recent_reads, attention }
}

#[cfg(test)]
mod tests;
