//! `custodia grant` and `custodia qr`: issue, inspect, check, revoke and export grants; read QR codes.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use custodia_core::SigningPublicKey;
use custodia_core::consent::to_fhir_consent;
use custodia_core::grant::{Grant, GrantId, GrantRequest, UnverifiedGrant, check_duration};
use custodia_core::labels::SensitivityLabel;
use custodia_core::policy::{self, Decision, ReadAttempt};
use custodia_core::purpose::PurposeOfUse;
use custodia_core::qr::{self, QrPayload};
use custodia_core::scope::{Interaction, Scope};
use custodia_core::statement::{StatementError, Unverified};
use custodia_core::time::{Timestamp, parse_duration};
use custodia_wallet::wallet::WalletError;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::common::{WalletArgs, emit, now, open_wallet, parse_all, read_input};

/// Who a grant is for and what it covers, as `grant create` and `grant preview` take them.
#[derive(clap::Args, Debug)]
pub(crate) struct GrantTerms {
    /// The grantee's signing key (cusig1...).
    #[arg(long, value_name = "KEY")]
    to: String,
    /// A SMART v2 scope, e.g. patient/Observation.rs?category=laboratory. Repeatable.
    #[arg(long = "scope", value_name = "SCOPE", required = true)]
    scopes: Vec<String>,
    /// A sensitivity label the grantee may see (PSY, HIV, SEX, ...). Repeatable.
    #[arg(long = "allow-label", value_name = "LABEL")]
    labels: Vec<String>,
}

impl GrantTerms {
    /// The request for these terms; parsed before any passphrase is asked for, so a typo costs no unlock.
    fn request(
        &self,
        purpose: &str,
        duration_seconds: u64,
        max_reads: Option<u32>,
        note: String,
    ) -> Result<GrantRequest> {
        Ok(GrantRequest {
            grantee: self.to.parse::<SigningPublicKey>().with_context(|| format!("--to {}", self.to))?,
            scopes: parse_all::<Scope>(&self.scopes)?,
            allowed_labels: parse_all::<SensitivityLabel>(&self.labels)?,
            purpose: purpose.parse::<PurposeOfUse>()?,
            duration_seconds,
            max_reads,
            note,
        })
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum GrantCommand {
    /// Sign a grant that lets KEY read the named parts of your record.
    Create {
        #[command(flatten)]
        wallet: WalletArgs,
        #[command(flatten)]
        terms: GrantTerms,
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
    /// Before granting: exactly which of your records at a hospital a grant would release to the grantee,
    /// and which stay hidden and why. Nothing is granted or posted; your records are read as you (and
    /// logged in your log).
    Preview {
        #[command(flatten)]
        wallet: WalletArgs,
        /// The hospital's gateway (without /fhir).
        #[arg(long, value_name = "URL")]
        gateway: String,
        #[command(flatten)]
        terms: GrantTerms,
        /// HL7 purpose of use.
        #[arg(long, value_name = "CODE", default_value = "TREAT")]
        purpose: String,
        #[arg(long)]
        json: bool,
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
pub(crate) enum QrCommand {
    /// Read a Custodia QR code from an image file and show what it holds.
    Decode {
        image: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn grant_command(command: GrantCommand) -> Result<ExitCode> {
    match command {
        GrantCommand::Create { wallet, terms, purpose, duration, max_reads, note, out, post } => {
            // Parse everything before the passphrase is asked for: a typo should not cost an unlock.
            let duration_seconds = parse_duration(&duration)?;
            check_duration(duration_seconds)?;
            let request = terms.request(&purpose, duration_seconds, max_reads, note)?;
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
        GrantCommand::Preview { wallet, gateway, terms, purpose, json } => {
            let request = terms.request(&purpose, 3600, None, String::new())?;
            crate::own_records::preview(&wallet, &gateway, request, json)
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
pub(crate) fn not_posted(wallet: &WalletArgs, id: GrantId, revocation: bool) -> String {
    let what = if revocation { format!("the revocation of grant {id}") } else { format!("grant {id}") };
    format!(
        "{what} is saved in the wallet but was not posted (retry with `custodia grant post --wallet {} {id}`)",
        wallet.wallet.display()
    )
}

/// A grant file as read: the statement, and whether its signature verifies.
type LoadedGrant = (Unverified<Grant>, Result<custodia_core::grant::VerifiedGrant, StatementError>);

/// Parses a grant file (an error here is bad input) and verifies it (a failure here is a "no").
pub(crate) fn load_grant(path: &Path) -> Result<LoadedGrant> {
    let bytes = read_input(path, "grant")?;
    let unverified = UnverifiedGrant::decode(&bytes).with_context(|| format!("{}", path.display()))?;
    let verified = unverified.clone().verify();
    Ok((unverified, verified))
}

pub(crate) fn grant_json(g: &Grant) -> serde_json::Value {
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

pub(crate) fn print_grant(g: &Grant) {
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

pub(crate) fn qr_decode(image: &Path, json: bool) -> Result<ExitCode> {
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
