//! The command tree and what each command does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use custodia_core::SigningPublicKey;
use custodia_core::consent::to_fhir_consent;
use custodia_core::grant::{Grant, GrantId, GrantRequest, UnverifiedGrant, check_duration};
use custodia_core::labels::SensitivityLabel;
use custodia_core::policy::{self, AccessRequest, Decision};
use custodia_core::purpose::PurposeOfUse;
use custodia_core::qr::{self, QrPayload};
use custodia_core::scope::{Interaction, Scope};
use custodia_core::statement::{StatementError, Unverified};
use custodia_core::time::{Timestamp, parse_duration};
use custodia_wallet::vault::{KdfParams, write_atomic};
use custodia_wallet::wallet::Wallet;
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
}

#[derive(Args, Debug)]
struct WalletArgs {
    /// The wallet directory.
    #[arg(long, env = "CUSTODIA_WALLET")]
    wallet: PathBuf,
    /// Read the passphrase from this file (otherwise CUSTODIA_PASSPHRASE, otherwise a prompt).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
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
    },
    /// List the grants this wallet issued.
    List {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant this wallet issued.
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

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Wallet(c) => wallet_command(c),
        Command::Grant(c) => grant_command(c),
        Command::Qr(QrCommand::Decode { image, json }) => qr_decode(&image, json),
    }
}

fn now() -> Result<Timestamp> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    Ok(Timestamp::from_unix(i64::try_from(secs)?)?)
}

fn read_input(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if meta.len() > MAX_INPUT_BYTES {
        bail!("{what} {} is larger than {} MiB", path.display(), MAX_INPUT_BYTES >> 20);
    }
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

fn open_wallet(args: &WalletArgs) -> Result<Wallet> {
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
                    "fingerprint": w.fingerprint().to_string(),
                    "created_at": w.created_at().to_string(),
                    "grants": w.grants().len(),
                });
                println!("{out:#}");
            } else {
                println!("name:           {}", w.name());
                println!("signing key:    {}", card.signing);
                println!("encryption key: {}", card.boxing);
                println!("fingerprint:    {}", w.fingerprint());
                println!("grants issued:  {}", w.grants().len());
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
    }
    Ok(ExitCode::SUCCESS)
}

fn write_qr(path: &Path, text: &str) -> Result<()> {
    let bytes = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => qr::render_png(text)?,
        Some("svg") => qr::render_svg(text)?.into_bytes(),
        _ => bail!("--qr file must end in .png or .svg: {}", path.display()),
    };
    Ok(write_atomic(path, &bytes)?)
}

fn parse_all<T: std::str::FromStr>(items: &[String]) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    items.iter().map(|s| Ok(s.parse::<T>()?)).collect()
}

fn grant_command(command: GrantCommand) -> Result<ExitCode> {
    match command {
        GrantCommand::Create { wallet, to, scopes, labels, purpose, duration, max_reads, note, out } => {
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
            let grant = w.issue_grant(request, now()?)?;
            emit(out.as_deref(), &grant.to_json())?;
            eprintln!("Granted {} to {} until {} (grant {})", grant.purpose, grant.grantee, grant.not_after, grant.id);
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
            let request = AccessRequest {
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
