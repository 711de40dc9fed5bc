//! The command tree and what each command does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use custodia_core::consent::to_fhir_consent;
use custodia_core::entry::{AccessEvent, AccessedResource, EntryNonce, Outcome, Role};
use custodia_core::grant::{Grant, GrantId, GrantRequest, UnverifiedGrant, check_duration};
use custodia_core::labels::SensitivityLabel;
use custodia_core::policy::{self, Decision, ReadAttempt};
use custodia_core::purpose::PurposeOfUse;
use custodia_core::qr::{self, QrPayload};
use custodia_core::scope::{Interaction, Scope};
use custodia_core::statement::{StatementError, Unverified};
use custodia_core::time::{Timestamp, parse_duration};
use custodia_core::{BoxPublicKey, SigningPublicKey};
use custodia_wallet::audit;
use custodia_wallet::ledger::{self, KeyTrust, LedgerClient, NewMember};
use custodia_wallet::vault::{KdfParams, write_atomic};
use custodia_wallet::wallet::{AccessRecord, Wallet, WalletError};
use serde_json::json;

use crate::passphrase;

/// Grants, resources and images are small; a larger file is a mistake or an attack.
const MAX_INPUT_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Parser, Debug)]
#[command(name = "custodia", version, about = "Custodia: a patient-held consent wallet for medical records")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, show and re-key a wallet.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Issue, inspect, check, revoke and export access grants.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Read Custodia QR codes.
    #[command(subcommand)]
    Qr(QrCommand),
    /// Work with a Custodia ledger: enroll members, audit its log.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// The wallet app in a browser.
    #[command(subcommand)]
    App(AppCommand),
    /// Run a hospital's record gateway.
    #[command(subcommand)]
    Gateway(crate::gateway::GatewayCommand),
    /// The emergency room's (or a clinician's) side: show a request, wait for the answer, read records.
    #[command(subcommand)]
    Er(crate::care::ErCommand),
    /// As the patient: scan a request's QR code, see who asks for what (verified), approve or decline.
    Scan(crate::care::ScanArgs),
    /// Make an emergency card: a printable QR code holding a standing break-glass grant.
    Card(crate::care::CardArgs),
    /// Social recovery: choose and check guardians; as a guardian, hold shares and approve recoveries.
    #[command(subcommand)]
    Guardian(crate::recovery::GuardianCommand),
    /// Recover a lost wallet on a new device with the guardians' help, or veto a recovery.
    #[command(subcommand)]
    Recover(crate::recovery::RecoverCommand),
}

#[derive(Subcommand, Debug)]
enum AppCommand {
    /// Serve the wallet app's UI to a browser on this machine, and print the address to open.
    Serve {
        /// The wallet's folder (created by the app's onboarding if it has no wallet yet).
        #[arg(long, value_name = "DIR", env = "CUSTODIA_WALLET")]
        wallet: PathBuf,
        /// Where to listen: loopback only (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:7421")]
        listen: std::net::SocketAddr,
        /// The ledger offered when the patient connects a new wallet.
        #[arg(long, value_name = "URL", env = "CUSTODIA_LEDGER")]
        ledger: Option<String>,
        /// The built UI (default: ui/dist of this checkout).
        #[arg(long, value_name = "DIR", env = "CUSTODIA_UI_DIR")]
        ui: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct LedgerArgs {
    /// The ledger's URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL", env = "CUSTODIA_LEDGER")]
    ledger: String,
    /// The ledger's checkpoint key (a C2SP verifier key, name+id+key). Without it, the key the ledger
    /// announces is trusted on first use.
    #[arg(long, value_name = "VKEY")]
    verifier_key: Option<String>,
}

impl LedgerArgs {
    /// Checks the URL and the key before anything is unlocked or sent.
    fn check(&self) -> Result<()> {
        ledger::normalise_url(&self.ledger)?;
        if let Some(key) = &self.verifier_key {
            ledger::parse_verifier_key(key)?;
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub(crate) struct WalletArgs {
    /// The wallet directory.
    #[arg(long, env = "CUSTODIA_WALLET")]
    pub(crate) wallet: PathBuf,
    /// Read the passphrase from this file (otherwise CUSTODIA_PASSPHRASE, otherwise a prompt).
    #[arg(long)]
    pub(crate) passphrase_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum WalletCommand {
    /// Create a new wallet with fresh keys.
    Init {
        #[command(flatten)]
        wallet: WalletArgs,
        /// The name shown to people who scan your contact card.
        #[arg(long, default_value = "Custodia wallet")]
        name: String,
    },
    /// Show the wallet's name, public keys and fingerprint.
    Show {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long)]
        json: bool,
        /// Also write the contact card as a QR code (.png or .svg).
        #[arg(long, value_name = "FILE")]
        qr: Option<PathBuf>,
    },
    /// Change the passphrase (the new one from CUSTODIA_NEW_PASSPHRASE or a prompt).
    Passwd {
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Enroll this wallet on a ledger as a patient, and remember the ledger and its key.
    Enroll {
        #[command(flatten)]
        wallet: WalletArgs,
        #[command(flatten)]
        ledger: LedgerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Read this wallet's entries from its ledger, verify every one, and show grants and access events.
    Sync {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum GrantCommand {
    /// Sign a grant that lets KEY read the named parts of your record.
    Create {
        #[command(flatten)]
        wallet: WalletArgs,
        /// The grantee's signing key (cusig1...).
        #[arg(long, value_name = "KEY")]
        to: String,
        /// A SMART v2 scope, e.g. patient/Observation.rs?category=laboratory. Repeatable.
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
        /// A sensitivity label the grantee may see (PSY, HIV, SEX, ...). Repeatable.
        #[arg(long = "allow-label", value_name = "LABEL")]
        labels: Vec<String>,
        /// HL7 purpose of use (TREAT, ETREAT, HRESCH, ...).
        #[arg(long, value_name = "CODE")]
        purpose: String,
        /// How long the grant lasts: 90m, 12h, 7d, 2w (at most 366d).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        #[arg(long, value_name = "N")]
        max_reads: Option<u32>,
        /// A note for yourself, e.g. "knee surgery".
        #[arg(long, default_value = "")]
        note: String,
        /// Write the signed grant here instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also post the grant to the wallet's ledger (the grantee must be an enrolled member).
        #[arg(long)]
        post: bool,
    },
    /// Post a grant, and its revocation if it is revoked, to the wallet's ledger if they are not there yet.
    Post {
        #[command(flatten)]
        wallet: WalletArgs,
        /// The grant id (32 hex digits).
        id: String,
    },
    /// List the grants this wallet issued.
    List {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant this wallet issued (and post the revocation when the grant is on the ledger).
    Revoke {
        #[command(flatten)]
        wallet: WalletArgs,
        /// The grant id (32 hex digits).
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Write the signed revocation here instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Verify a signed grant and show what it allows.
    Show {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Decide whether a grant allows reading a FHIR resource.
    Check {
        file: PathBuf,
        #[arg(long, value_name = "RESOURCE.json")]
        resource: PathBuf,
        /// The purpose of the read (default: the grant's own).
        #[arg(long, value_name = "CODE")]
        purpose: Option<String>,
        /// When the read happens, RFC 3339 (default: now).
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        /// Check a search rather than a read by id.
        #[arg(long)]
        search: bool,
    },
    /// Print the grant as a FHIR R4 Consent resource.
    ExportFhir { file: PathBuf },
}

#[derive(Subcommand, Debug)]
enum QrCommand {
    /// Read a Custodia QR code from an image file and show what it holds.
    Decode {
        image: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Make a new ledger in an empty folder; prints its checkpoint verifier key.
    Init {
        /// The ledger's folder (config, checkpoint key and, by default, its SQLite database).
        #[arg(long)]
        dir: PathBuf,
        /// The network authority's signing key (cusig1...): the only key that may enroll members.
        #[arg(long, value_name = "KEY")]
        authority: String,
        /// The checkpoint origin, e.g. ledger.example.org (default: a random name under custodia.invalid).
        #[arg(long)]
        origin: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Serve a ledger until Ctrl-C or SIGTERM.
    Serve {
        #[arg(long)]
        dir: PathBuf,
        /// sqlite:PATH or postgres://user@host/db (default: the folder's ledger.sqlite).
        #[arg(long)]
        db: Option<String>,
        /// Where to listen (loopback only unless CUSTODIA_LEDGER_PUBLIC=1; port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:7420")]
        listen: std::net::SocketAddr,
        /// Entries (and signed reads) a second allowed per key.
        #[arg(long, value_name = "N")]
        rate_limit: Option<u32>,
    },
    /// As the network authority: enroll a provider, gateway or emergency provider on the ledger.
    Enroll {
        /// The authority's wallet (the one whose key the ledger names as its authority).
        #[command(flatten)]
        wallet: WalletArgs,
        #[command(flatten)]
        ledger: LedgerArgs,
        /// The member's signing key (cusig1...).
        #[arg(long, value_name = "KEY", required_unless_present = "contact", requires = "box_key")]
        key: Option<String>,
        /// The member's encryption key (cubox1...), which grants and revocations for them are sealed to.
        #[arg(long, value_name = "CUBOX", requires = "key")]
        box_key: Option<String>,
        /// The member's contact card instead of --key and --box-key: the QR text, or an image of the code.
        #[arg(long, value_name = "QR_TEXT_OR_IMAGE", conflicts_with_all = ["key", "box_key"])]
        contact: Option<String>,
        /// provider, gateway or emergency.
        #[arg(long)]
        role: Role,
        /// The name patients see (default: the contact card's name).
        #[arg(long, required_unless_present = "contact")]
        name: Option<String>,
        /// The member's organisation, shown to patients.
        #[arg(long)]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// Audit a ledger's whole public log: fetch every tile, recompute every leaf hash and the root, and
    /// compare with the signed checkpoint.
    Audit {
        #[command(flatten)]
        ledger: LedgerArgs,
        #[arg(long)]
        json: bool,
    },
    /// [test and demo tool] As a gateway, log an access event about a patient. Real gateways log their
    /// own reads; this stands in for one in tests and demos.
    PostAccess {
        /// The gateway's wallet (enrolled by the network authority with role gateway).
        #[command(flatten)]
        wallet: WalletArgs,
        #[command(flatten)]
        ledger: LedgerArgs,
        /// The patient's signing key (cusig1...).
        #[arg(long, value_name = "KEY")]
        patient: String,
        /// The grant the read was made under.
        #[arg(long, value_name = "GRANT_ID")]
        grant: String,
        /// A resource read, as Type/id (e.g. Observation/hba1c-1). Repeatable.
        #[arg(long = "resource", value_name = "TYPE/ID", required = true)]
        resources: Vec<String>,
        /// Who read (default: the gateway's own key).
        #[arg(long, value_name = "KEY")]
        reader: Option<String>,
        #[arg(long, default_value = "Test reader")]
        reader_name: String,
        /// The reader's organisation (default: the gateway wallet's name).
        #[arg(long)]
        org: Option<String>,
        /// HL7 purpose of use of the read.
        #[arg(long, value_name = "CODE", default_value = "TREAT")]
        purpose: String,
        /// Post this many synthetic events instead (varied readers, records, outcomes and times over
        /// the last --spread-days), for demonstrations and load tests.
        #[arg(long, value_name = "N", conflicts_with = "reader")]
        count: Option<usize>,
        #[arg(long, value_name = "DAYS", default_value_t = 90, requires = "count")]
        spread_days: u32,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Wallet(c) => wallet_command(c),
        Command::Grant(c) => grant_command(c),
        Command::Qr(QrCommand::Decode { image, json }) => qr_decode(&image, json),
        Command::Ledger(c) => ledger_command(c),
        Command::App(AppCommand::Serve { wallet, listen, ledger, ui }) => {
            crate::app_server::serve(&wallet, listen, ledger, ui.as_deref())
        }
        Command::Gateway(c) => crate::gateway::run(c),
        Command::Er(c) => crate::care::er(c),
        Command::Scan(args) => crate::care::scan(args),
        Command::Card(args) => crate::care::card(args),
        Command::Guardian(c) => crate::recovery::guardian(c),
        Command::Recover(c) => crate::recovery::recover(c),
    }
}

pub(crate) fn now() -> Result<Timestamp> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    Ok(Timestamp::from_unix(i64::try_from(secs)?)?)
}

pub(crate) fn read_input(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if meta.len() > MAX_INPUT_BYTES {
        bail!("{what} {} is larger than {} MiB", path.display(), MAX_INPUT_BYTES >> 20);
    }
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

pub(crate) fn open_wallet(args: &WalletArgs) -> Result<Wallet> {
    let pass = passphrase::current(args.passphrase_file.as_deref(), false)?;
    Ok(Wallet::open(&args.wallet, pass)?)
}

/// Writes `text` to `out` atomically, or prints it.
fn emit(out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        Some(path) => Ok(write_atomic(path, text.as_bytes())?),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

fn wallet_command(command: WalletCommand) -> Result<ExitCode> {
    match command {
        WalletCommand::Init { wallet, name } => {
            let pass = passphrase::current(wallet.passphrase_file.as_deref(), true)?;
            let w = Wallet::create(&wallet.wallet, &name, pass, KdfParams::DEFAULT, now()?)?;
            println!("Created wallet {:?} in {}", w.name(), wallet.wallet.display());
            println!("signing key:  {}", w.signing_key());
            println!("fingerprint:  {}", w.fingerprint());
        }
        WalletCommand::Show { wallet, json, qr } => {
            let w = open_wallet(&wallet)?;
            let card = w.contact_card();
            if let Some(path) = &qr {
                write_qr(path, &QrPayload::Contact(card.clone()).encode())?;
            }
            if json {
                let out = json!({
                    "name": w.name(),
                    "signing_key": card.signing.to_string(),
                    "encryption_key": card.boxing.to_string(),
                    "contact_card": QrPayload::Contact(card.clone()).encode(),
                    "fingerprint": w.fingerprint().to_string(),
                    "created_at": w.created_at().to_string(),
                    "grants": w.grants().len(),
                    "ledger": w.ledger().map(|l| json!({
                        "url": l.url,
                        "enrollment_index": l.enrollment_index,
                        "checkpoint_size": l.checkpoint.size,
                    })),
                });
                println!("{out:#}");
            } else {
                println!("name:           {}", w.name());
                println!("signing key:    {}", card.signing);
                println!("encryption key: {}", card.boxing);
                println!("fingerprint:    {}", w.fingerprint());
                println!("grants issued:  {}", w.grants().len());
                if let Some(l) = w.ledger() {
                    println!("ledger:         {} (enrolled as entry {})", l.url, l.enrollment_index);
                }
                if let Some(path) = &qr {
                    println!("contact card QR written to {}", path.display());
                }
            }
        }
        WalletCommand::Passwd { wallet } => {
            let mut w = open_wallet(&wallet)?;
            w.change_passphrase(passphrase::new()?)?;
            println!("Passphrase changed.");
        }
        WalletCommand::Enroll { wallet, ledger, json } => {
            ledger.check()?;
            let mut w = open_wallet(&wallet)?;
            let e = w.enroll(&ledger.ledger, ledger.verifier_key.as_deref(), now()?)?;
            if json {
                let out = json!({
                    "ledger": e.url,
                    "index": e.index,
                    "already_enrolled": e.already_enrolled,
                    "verifier_key": e.verifier_key,
                    "verifier_key_trust": e.trust.as_str(),
                    "authority": e.authority.to_string(),
                    "checkpoint_size": e.checkpoint_size,
                });
                println!("{out:#}");
            } else {
                if e.already_enrolled {
                    println!(
                        "Already enrolled on {} as entry {}; the wallet now remembers this ledger.",
                        e.url, e.index
                    );
                } else {
                    println!("Enrolled on {} as entry {}.", e.url, e.index);
                }
                println!("ledger key: {}", e.verifier_key);
                println!("            {}", trust_note(e.trust));
                println!("authority:  {}", e.authority);
                println!("checkpoint: {} entries", e.checkpoint_size);
            }
        }
        WalletCommand::Sync { wallet, json } => {
            let mut w = open_wallet(&wallet)?;
            let now = now()?;
            let report = w.sync(now)?;
            print_sync(&report, w.access_events(), json);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn trust_note(trust: KeyTrust) -> &'static str {
    match trust {
        KeyTrust::Given => "(the key you gave; the ledger agrees)",
        KeyTrust::FirstUse => {
            "(trusted on first use: the ledger announced this key; check it with the ledger's operator)"
        }
        KeyTrust::Stored => "(the key this wallet stored when it enrolled)",
    }
}

fn print_sync(report: &custodia_wallet::wallet::SyncReport, access_events: &[AccessRecord], json: bool) {
    let events: Vec<serde_json::Value> = access_events
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(a.event.statement()).unwrap_or_default();
            v["index"] = json!(a.index);
            v["verified"] = json!(true);
            v
        })
        .collect();
    if json {
        let out = json!({
            "ledger": report.url,
            "checkpoint_size": report.checkpoint_size,
            "new_entries": report.new_entries,
            "complete": report.complete,
            "grants": report.grants.iter().map(|g| json!({
                "id": g.id.to_string(),
                "status": g.status.as_str(),
                "index": g.index,
                "revocation_index": g.revocation_index,
                "grantee": g.grantee.to_string(),
                "purpose": g.purpose.code(),
                "not_after": g.not_after.to_string(),
            })).collect::<Vec<_>>(),
            "access_events": events,
            "redacted": report.redacted.iter().map(|(i, k)| json!({"index": i, "kind": k.as_str()})).collect::<Vec<_>>(),
            "new_recovery_requests": serde_json::to_value(&report.new_recovery_requests).unwrap_or_default(),
        });
        println!("{out:#}");
        return;
    }
    for r in &report.new_recovery_requests {
        println!(
            "WARNING: a new device asked your guardians to recover this wallet at {} (request {}). If it was not \
             you, cancel it now: custodia recover cancel --request {}",
            r.asked_at, r.request_id, r.request_id
        );
    }
    println!(
        "Synced with {}: {} new entries, all verified (checkpoint of {} entries).",
        report.url, report.new_entries, report.checkpoint_size
    );
    if !report.complete {
        println!("More entries remain: run `custodia wallet sync` again.");
    }
    if report.grants.is_empty() {
        println!("No grants.");
    }
    for g in &report.grants {
        let place = match (g.index, g.revocation_index) {
            (Some(i), Some(r)) => format!("entry {i}, revoked in entry {r}"),
            (Some(i), None) => format!("entry {i}"),
            (None, _) => "not on the ledger".to_owned(),
        };
        println!(
            "grant {}  {:<7}  {}  {}  until {}  ({place})",
            g.id,
            g.status.as_str(),
            g.purpose,
            g.grantee,
            g.not_after
        );
    }
    if access_events.is_empty() {
        println!("No access events.");
    }
    for a in access_events {
        let e = a.event.statement();
        let what: Vec<String> = e.resources.iter().map(|r| format!("{}/{}", r.resource_type, r.id)).collect();
        let outcome = match e.outcome {
            Outcome::Allowed => "read".to_owned(),
            Outcome::Denied => format!("was refused ({})", e.reason.as_deref().unwrap_or("no reason given")),
        };
        let grant = e.grant_id.map(|g| format!(" under grant {g}")).unwrap_or_default();
        println!(
            "entry {}  {}  {} ({}) {outcome} {}{grant} for {}{}",
            a.index,
            e.at,
            e.reader_name,
            e.organisation,
            if what.is_empty() { e.request.clone() } else { what.join(", ") },
            e.purpose,
            if e.break_glass { " [break-glass]" } else { "" }
        );
    }
    for (index, kind) in &report.redacted {
        println!("entry {index}  {} entry, body redacted", kind.as_str());
    }
}

fn write_qr(path: &Path, text: &str) -> Result<()> {
    let bytes = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => qr::render_png(text)?,
        Some("svg") => qr::render_svg(text)?.into_bytes(),
        _ => bail!("--qr file must end in .png or .svg: {}", path.display()),
    };
    Ok(write_atomic(path, &bytes)?)
}

pub(crate) fn parse_all<T: std::str::FromStr>(items: &[String]) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    items.iter().map(|s| Ok(s.parse::<T>()?)).collect()
}

fn grant_command(command: GrantCommand) -> Result<ExitCode> {
    match command {
        GrantCommand::Create { wallet, to, scopes, labels, purpose, duration, max_reads, note, out, post } => {
            // Parse everything before the passphrase is asked for: a typo should not cost an unlock.
            let duration_seconds = parse_duration(&duration)?;
            check_duration(duration_seconds)?;
            let request = GrantRequest {
                grantee: to.parse::<SigningPublicKey>().with_context(|| format!("--to {to}"))?,
                scopes: parse_all::<Scope>(&scopes)?,
                allowed_labels: parse_all::<SensitivityLabel>(&labels)?,
                purpose: purpose.parse::<PurposeOfUse>()?,
                duration_seconds,
                max_reads,
                note,
            };
            let mut w = open_wallet(&wallet)?;
            if post {
                // Before signing: a grant the ledger cannot take should not be issued at all.
                w.member(&request.grantee)?;
            }
            let grant = w.issue_grant(request, now()?)?;
            emit(out.as_deref(), &grant.to_json())?;
            eprintln!("Granted {} to {} until {} (grant {})", grant.purpose, grant.grantee, grant.not_after, grant.id);
            if post {
                let index = w.post_grant(grant.id, now()?).with_context(|| not_posted(&wallet, grant.id, false))?;
                eprintln!("Posted grant {} to the ledger as entry {index}", grant.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        GrantCommand::Post { wallet, id } => {
            let id: GrantId = id.parse()?;
            let mut w = open_wallet(&wallet)?;
            let g = w.grant(id).ok_or(WalletError::UnknownGrant(id))?;
            let (grant_posted, revocation_pending) =
                (g.grant_index.is_some(), g.revocation.is_some() && g.revocation_index.is_none());
            if grant_posted && !revocation_pending {
                println!("Grant {id} is already on the ledger, with its revocation if it has one.");
            }
            if !grant_posted {
                let index = w.post_grant(id, now()?)?;
                println!("Posted grant {id} to the ledger as entry {index}");
            }
            if revocation_pending {
                let index = w.post_revocation(id, now()?)?;
                println!("Posted the revocation of grant {id} to the ledger as entry {index}");
            }
            Ok(ExitCode::SUCCESS)
        }
        GrantCommand::List { wallet, json } => {
            let w = open_wallet(&wallet)?;
            let rows: Vec<_> = w
                .grants()
                .iter()
                .map(|g| {
                    let mut v = grant_json(&g.grant);
                    v["revoked_at"] = json!(g.revocation.as_ref().map(|r| r.revoked_at.to_string()));
                    v["ledger_index"] = json!(g.grant_index);
                    v["revocation_index"] = json!(g.revocation_index);
                    v
                })
                .collect();
            if json {
                println!("{:#}", json!(rows));
            } else if rows.is_empty() {
                println!("No grants issued yet.");
            } else {
                for g in w.grants() {
                    let state = match &g.revocation {
                        Some(r) => format!("revoked {}", r.revoked_at),
                        None => format!("until {}", g.grant.not_after),
                    };
                    println!("{}  {}  {}  {}", g.grant.id, g.grant.purpose, g.grant.grantee, state);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        GrantCommand::Revoke { wallet, id, reason, out } => {
            let id: GrantId = id.parse()?;
            let mut w = open_wallet(&wallet)?;
            let revocation = w.revoke_grant(id, now()?, &reason)?;
            emit(out.as_deref(), &revocation.to_json())?;
            eprintln!("Revoked grant {id}");
            let on_ledger = w.grant(id).is_some_and(|g| g.grant_index.is_some());
            if w.ledger().is_some() && on_ledger {
                let index = w.post_revocation(id, now()?).with_context(|| not_posted(&wallet, id, true))?;
                eprintln!("Posted the revocation to the ledger as entry {index}");
            } else if w.ledger().is_some() {
                eprintln!("Not posted: grant {id} is not on the ledger.");
            }
            Ok(ExitCode::SUCCESS)
        }
        GrantCommand::Show { file, json } => {
            let (claimed, verified) = load_grant(&file)?;
            let g = verified.as_ref().map(|v| v.statement()).unwrap_or_else(|_| claimed.claimed());
            if json {
                let mut v = grant_json(g);
                v["signature_valid"] = json!(verified.is_ok());
                println!("{v:#}");
            } else {
                print_grant(g);
            }
            match verified {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("custodia: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        GrantCommand::Check { file, resource, purpose, at, search } => {
            let (_, verified) = load_grant(&file)?;
            let bytes = read_input(&resource, "resource")?;
            let resource: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("resource {} is not JSON", resource.display()))?;
            let at = match at {
                Some(text) => Timestamp::parse(&text)?,
                None => now()?,
            };
            let purpose = purpose.map(|p| p.parse::<PurposeOfUse>()).transpose()?;
            let grant = match verified {
                Ok(g) => g,
                Err(e) => {
                    println!("denied: {e}");
                    return Ok(ExitCode::from(1));
                }
            };
            let request = ReadAttempt {
                interaction: if search { Interaction::Search } else { Interaction::Read },
                purpose: purpose.unwrap_or(grant.purpose),
                at,
                reads_so_far: 0,
            };
            match policy::check(&grant, &resource, &request)? {
                Decision::Allow => {
                    println!("allowed");
                    Ok(ExitCode::SUCCESS)
                }
                Decision::Deny(reason) => {
                    println!("denied: {reason}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        GrantCommand::ExportFhir { file } => {
            let (_, verified) = load_grant(&file)?;
            match verified {
                Ok(g) => {
                    println!("{:#}", to_fhir_consent(&g));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("custodia: not exported: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

/// The context of a failed post after the wallet already saved what it signed.
fn not_posted(wallet: &WalletArgs, id: GrantId, revocation: bool) -> String {
    let what = if revocation { format!("the revocation of grant {id}") } else { format!("grant {id}") };
    format!(
        "{what} is saved in the wallet but was not posted (retry with `custodia grant post --wallet {} {id}`)",
        wallet.wallet.display()
    )
}

type LoadedGrant = (Unverified<Grant>, Result<custodia_core::grant::VerifiedGrant, StatementError>);

/// Parses a grant file (an error here is bad input) and verifies it (a failure here is a "no").
fn load_grant(path: &Path) -> Result<LoadedGrant> {
    let bytes = read_input(path, "grant")?;
    let unverified = UnverifiedGrant::decode(&bytes).with_context(|| format!("{}", path.display()))?;
    let verified = unverified.clone().verify();
    Ok((unverified, verified))
}

fn grant_json(g: &Grant) -> serde_json::Value {
    json!({
        "id": g.id.to_string(),
        "patient": g.patient.to_string(),
        "grantee": g.grantee.to_string(),
        "scopes": g.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "allowed_labels": g.allowed_labels.iter().map(|l| l.code()).collect::<Vec<_>>(),
        "purpose": g.purpose.code(),
        "issued_at": g.issued_at.to_string(),
        "not_before": g.not_before.to_string(),
        "not_after": g.not_after.to_string(),
        "max_reads": g.max_reads,
        "note": g.note,
    })
}

fn print_grant(g: &Grant) {
    println!("grant:     {}", g.id);
    println!("patient:   {}", g.patient);
    println!("grantee:   {}", g.grantee);
    println!("purpose:   {} ({})", g.purpose, g.purpose.display());
    println!("valid:     {} to {}", g.not_before, g.not_after);
    for s in &g.scopes {
        println!("scope:     {s}");
    }
    for l in &g.allowed_labels {
        println!("label:     {} ({})", l.code(), l.display());
    }
    if let Some(n) = g.max_reads {
        println!("max reads: {n}");
    }
    if !g.note.is_empty() {
        println!("note:      {}", g.note);
    }
}

fn qr_decode(image: &Path, json: bool) -> Result<ExitCode> {
    let bytes = read_input(image, "image")?;
    let text = qr::decode_image(&bytes).with_context(|| format!("{}", image.display()))?;
    let payload = QrPayload::decode(&text)?;
    match payload {
        QrPayload::Contact(card) => {
            let fingerprint = custodia_core::Fingerprint::of(&card.signing, &card.boxing);
            if json {
                let out = json!({
                    "kind": "contact",
                    "name": card.name,
                    "signing_key": card.signing.to_string(),
                    "encryption_key": card.boxing.to_string(),
                    "fingerprint": fingerprint.to_string(),
                });
                println!("{out:#}");
            } else {
                println!("contact card");
                println!("name:           {}", card.name);
                println!("signing key:    {}", card.signing);
                println!("encryption key: {}", card.boxing);
                println!("fingerprint:    {fingerprint}");
            }
        }
        _ => bail!("{} holds a kind of Custodia QR code this command cannot show yet", image.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Synthetic reads for demonstrations and load tests: a handful of readers at a few organisations, the
/// common record kinds, about one in twenty refused and one in a hundred break-glass, spread evenly
/// over the last `spread_days`.
fn synthetic_access_events(
    gateway: &Wallet,
    patient: SigningPublicKey,
    grant: GrantId,
    count: usize,
    spread_days: u32,
    now: Timestamp,
) -> Result<Vec<AccessEvent>> {
    const READERS: [(&str, &str); 6] = [
        ("Dr Grace Hopper", "St Mary's Hospital"),
        ("Dr Ada Lovelace", "St Mary's Hospital"),
        ("Nurse Florence Nightingale", "St Mary's Hospital"),
        ("Dr Alan Turing", "Riverside Clinic"),
        ("Dr Rosalind Franklin", "Riverside Clinic"),
        ("ER team", "City Emergency Department"),
    ];
    const RECORDS: [(&str, &str, &str); 6] = [
        ("Observation", "laboratory", "hba1c"),
        ("AllergyIntolerance", "allergies", "allergy"),
        ("MedicationRequest", "medications", "med"),
        ("Condition", "conditions", "cond"),
        ("DiagnosticReport", "imaging", "xray"),
        ("DocumentReference", "notes", "note"),
    ];
    let span = i64::from(spread_days) * 86_400;
    let readers: Vec<(SigningPublicKey, &str, &str)> = READERS
        .iter()
        .enumerate()
        .map(|(i, (name, org))| {
            // Stable, distinct reader keys derived from the gateway's name, so filters have facets.
            let seed = custodia_core::MasterSeed::from_bytes(sha2_seed(gateway.name(), i));
            (custodia_core::Identity::from_seed(&seed).signing_public(), *name, *org)
        })
        .collect();
    (0..count)
        .map(|i| {
            let (reader, reader_name, organisation) = readers[i % readers.len()];
            let (resource_type, category, prefix) = RECORDS[(i / readers.len()) % RECORDS.len()];
            let denied = i % 20 == 7;
            let break_glass = !denied && i % 100 == 42;
            let back = if count > 1 { span * (count - 1 - i) as i64 / (count - 1) as i64 } else { 0 };
            let at = Timestamp::from_unix(now.unix() - back)?;
            let id = format!("{prefix}-{}", i % 97);
            Ok(AccessEvent {
                id: EntryNonce::generate(),
                gateway: gateway.signing_key(),
                patient,
                reader,
                reader_name: reader_name.into(),
                organisation: organisation.into(),
                grant_id: Some(grant),
                purpose: if break_glass { "ETREAT".parse()? } else { PurposeOfUse::TREATMENT },
                at,
                outcome: if denied { Outcome::Denied } else { Outcome::Allowed },
                break_glass,
                request: format!("GET {resource_type}/{id}"),
                resources: if denied {
                    vec![]
                } else {
                    vec![AccessedResource {
                        resource_type: resource_type.into(),
                        id,
                        labels: vec![],
                        category: Some(category.into()),
                    }]
                },
                reason: denied.then(|| "the grant does not cover this record".into()),
            })
        })
        .collect()
}

fn sha2_seed(name: &str, i: usize) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(b"custodia/synthetic-reader")
        .chain_update(name)
        .chain_update(i.to_le_bytes())
        .finalize()
        .into()
}

/// A `--contact` value: QR text, or the path of an image holding the code.
fn read_contact(value: &str) -> Result<qr::ContactCard> {
    let path = Path::new(value);
    let text = if path.is_file() {
        let bytes = read_input(path, "contact image")?;
        qr::decode_image(&bytes).with_context(|| format!("{}", path.display()))?
    } else {
        value.to_owned()
    };
    match QrPayload::decode(&text).context("--contact")? {
        QrPayload::Contact(card) => Ok(card),
        _ => bail!("--contact is a Custodia QR code, but not a contact card"),
    }
}

/// `Type/id`, as FHIR writes a reference.
fn parse_resource(text: &str) -> Result<AccessedResource> {
    let bad = || anyhow::anyhow!("--resource {text:?} is not Type/id (e.g. Observation/hba1c-1)");
    let (kind, id) = text.split_once('/').ok_or_else(bad)?;
    let kind_ok = kind.len() <= 64
        && kind.starts_with(|c: char| c.is_ascii_uppercase())
        && kind.chars().all(|c| c.is_ascii_alphanumeric());
    let id_ok =
        !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !kind_ok || !id_ok {
        return Err(bad());
    }
    Ok(AccessedResource { resource_type: kind.to_owned(), id: id.to_owned(), labels: vec![], category: None })
}

fn ledger_command(command: LedgerCommand) -> Result<ExitCode> {
    match command {
        LedgerCommand::Init { dir, authority, origin, json } => {
            crate::ledger_server::init(&dir, &authority, origin.as_deref(), json)
        }
        LedgerCommand::Serve { dir, db, listen, rate_limit } => {
            crate::ledger_server::serve(&dir, db.as_deref(), listen, rate_limit)
        }
        LedgerCommand::Enroll { wallet, ledger, key, box_key, contact, role, name, org, json } => {
            ledger.check()?;
            let (key, box_key, card_name) = match (&contact, &key, &box_key) {
                (Some(contact), _, _) => {
                    let card = read_contact(contact)?;
                    (card.signing, card.boxing, Some(card.name))
                }
                (None, Some(key), Some(box_key)) => (
                    key.parse::<SigningPublicKey>().with_context(|| format!("--key {key}"))?,
                    box_key.parse::<BoxPublicKey>().with_context(|| format!("--box-key {box_key}"))?,
                    None,
                ),
                _ => bail!("give the member's --key and --box-key, or their --contact card"),
            };
            let name = name.or(card_name).context("--name is required")?;
            let member = NewMember { key, box_key, role, name, org };
            let mut w = open_wallet(&wallet)?;
            let posted = w.enroll_member(&ledger.ledger, ledger.verifier_key.as_deref(), member.clone(), now()?)?;
            if json {
                let out = json!({
                    "index": posted.index,
                    "key": member.key.to_string(),
                    "box_key": member.box_key.to_string(),
                    "role": member.role.as_str(),
                    "name": member.name,
                    "org": member.org,
                    "verifier_key_trust": posted.trust.as_str(),
                });
                println!("{out:#}");
            } else {
                println!(
                    "Enrolled {} ({}, {}) as a {} in ledger entry {}",
                    member.name, member.org, member.key, member.role, posted.index
                );
                if posted.trust == KeyTrust::FirstUse {
                    println!("{}", trust_note(posted.trust));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Audit { ledger, json } => {
            ledger.check()?;
            let client = LedgerClient::new(&ledger.ledger)?;
            let (verifier, trust) = match &ledger.verifier_key {
                Some(key) => (ledger::parse_verifier_key(key)?, KeyTrust::Given),
                None => (ledger::parse_verifier_key(&client.info()?.verifier_key)?, KeyTrust::FirstUse),
            };
            let mut last_tenth = 0;
            let mut progress = |done: u64, total: u64| {
                // Only logs of more than a few thousand entries take long enough to report on.
                if total >= 16 * audit::TILE_WIDTH {
                    let tenth = done * 10 / total;
                    if tenth > last_tenth {
                        last_tenth = tenth;
                        eprintln!("audit: {done} of {total} entries checked");
                    }
                }
            };
            let report = audit::audit(&client, &verifier, &mut progress)?;
            if json {
                let out = json!({
                    "ok": true,
                    "origin": report.origin,
                    "size": report.size,
                    "root": report.root.to_base64(),
                    "tiles_fetched": report.tiles_fetched,
                    "kinds": report.kinds,
                    "verifier_key": verifier.to_vkey(),
                    "verifier_key_trust": trust.as_str(),
                });
                println!("{out:#}");
            } else {
                if trust == KeyTrust::FirstUse {
                    println!("ledger key:    {} {}", verifier.to_vkey(), trust_note(trust));
                }
                println!("origin:        {}", report.origin);
                println!("size:          {}", report.size);
                println!("root:          {}", report.root.to_base64());
                println!("tiles fetched: {}", report.tiles_fetched);
                for (kind, count) in &report.kinds {
                    println!("{:<14} {count}", format!("{kind}:"));
                }
                println!("OK: every leaf, every tile and the root match the signed checkpoint");
            }
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::PostAccess {
            wallet,
            ledger,
            patient,
            grant,
            resources,
            reader,
            reader_name,
            org,
            purpose,
            count,
            spread_days,
            json,
        } => {
            ledger.check()?;
            if let Some(count) = count {
                let patient = patient.parse::<SigningPublicKey>().with_context(|| format!("--patient {patient}"))?;
                let grant_id: GrantId = grant.parse().with_context(|| format!("--grant {grant}"))?;
                let mut w = open_wallet(&wallet)?;
                let at = now()?;
                let events = synthetic_access_events(&w, patient, grant_id, count, spread_days, at)?;
                let started = std::time::Instant::now();
                let indexes =
                    w.post_access_events(&ledger.ledger, ledger.verifier_key.as_deref(), events, 256, at, |done| {
                        if done % 10_240 == 0 || done == count {
                            eprintln!("custodia: posted {done} of {count}");
                        }
                    })?;
                let seconds = started.elapsed().as_secs_f64();
                if json {
                    println!(
                        "{:#}",
                        json!({"posted": indexes.len(), "first": indexes.first(), "last": indexes.last(), "seconds": seconds})
                    );
                } else {
                    println!("Posted {} synthetic access events in {seconds:.1} s", indexes.len());
                }
                return Ok(ExitCode::SUCCESS);
            }
            let patient = patient.parse::<SigningPublicKey>().with_context(|| format!("--patient {patient}"))?;
            let grant_id: GrantId = grant.parse().with_context(|| format!("--grant {grant}"))?;
            let resources = resources.iter().map(|r| parse_resource(r)).collect::<Result<Vec<_>>>()?;
            let reader =
                reader.map(|r| r.parse::<SigningPublicKey>().with_context(|| format!("--reader {r}"))).transpose()?;
            let purpose = purpose.parse::<PurposeOfUse>()?;
            let mut w = open_wallet(&wallet)?;
            let at = now()?;
            let references: Vec<String> = resources.iter().map(|r| format!("{}/{}", r.resource_type, r.id)).collect();
            let event = AccessEvent {
                id: EntryNonce::generate(),
                gateway: w.signing_key(),
                patient,
                reader: reader.unwrap_or_else(|| w.signing_key()),
                reader_name,
                organisation: org.unwrap_or_else(|| w.name().to_owned()),
                grant_id: Some(grant_id),
                purpose,
                at,
                outcome: Outcome::Allowed,
                break_glass: false,
                request: format!("GET {}", references.join(",")),
                resources,
                reason: None,
            };
            let posted = w.post_access_event(&ledger.ledger, ledger.verifier_key.as_deref(), event, at)?;
            if json {
                println!("{:#}", json!({"index": posted.index, "verifier_key_trust": posted.trust.as_str()}));
            } else {
                println!("Logged the access to {} as ledger entry {}", references.join(", "), posted.index);
                if posted.trust == KeyTrust::FirstUse {
                    println!("{}", trust_note(posted.trust));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
