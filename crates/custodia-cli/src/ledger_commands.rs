//! `custodia ledger`: start and serve a ledger, enroll members, post access events, audit the log.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use custodia_core::entry::{AccessEvent, AccessedResource, EntryNonce, Outcome, Role};
use custodia_core::grant::GrantId;
use custodia_core::purpose::PurposeOfUse;
use custodia_core::qr::{self, QrPayload};
use custodia_core::time::Timestamp;
use custodia_core::{BoxPublicKey, SigningPublicKey};
use custodia_wallet::audit;
use custodia_wallet::ledger::{self, KeyTrust, LedgerClient, NewMember};
use custodia_wallet::wallet::Wallet;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::common::{LedgerArgs, WalletArgs, now, open_wallet, read_input};
use crate::wallet_commands::trust_note;

#[derive(Subcommand, Debug)]
pub(crate) enum LedgerCommand {
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
    Serve(crate::service_config::LedgerServe),
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
        /// The network profile: the checkpoint must be signed by its log key and cosigned by its
        /// witnesses' quorum.
        #[arg(long, value_name = "FILE|IMAGE", conflicts_with = "verifier_key")]
        network: Option<std::path::PathBuf>,
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

/// Synthetic reads for demonstrations and load tests: a handful of readers at a few organisations, the
/// common record kinds, about one in twenty refused and one in a hundred break-glass, spread evenly
/// over the last `spread_days`.
pub(crate) fn synthetic_access_events(
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
                emergency_reason: None,
            })
        })
        .collect()
}

pub(crate) fn sha2_seed(name: &str, i: usize) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(b"custodia/synthetic-reader")
        .chain_update(name)
        .chain_update(i.to_le_bytes())
        .finalize()
        .into()
}

/// A `--contact` value: QR text, or the path of an image holding the code.
pub(crate) fn read_contact(value: &str) -> Result<qr::ContactCard> {
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
pub(crate) fn parse_resource(text: &str) -> Result<AccessedResource> {
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

pub(crate) fn ledger_command(command: LedgerCommand) -> Result<ExitCode> {
    match command {
        LedgerCommand::Init { dir, authority, origin, json } => {
            crate::ledger_server::init(&dir, &authority, origin.as_deref(), json)
        }
        LedgerCommand::Serve(options) => crate::ledger_server::serve(options.resolve()?),
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
        LedgerCommand::Audit { ledger, network, json } => {
            ledger.check()?;
            let client = LedgerClient::new(&ledger.ledger)?;
            let profile = network.as_deref().map(crate::network::read_profile).transpose()?;
            let (verifier, trust) = match (&profile, &ledger.verifier_key) {
                (Some(profile), _) => (profile.log_key().clone(), KeyTrust::Network),
                (None, Some(key)) => (ledger::parse_verifier_key(key)?, KeyTrust::Given),
                (None, None) => (ledger::parse_verifier_key(&client.info()?.verifier_key)?, KeyTrust::FirstUse),
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
            let report = audit::audit(&client, &verifier, profile.as_ref().map(|p| &p.policy), &mut progress)?;
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
                    "cosigned_by": report.cosigned_by,
                });
                println!("{out:#}");
            } else {
                if !report.cosigned_by.is_empty() {
                    println!("cosigned by:   {}", report.cosigned_by.join(", "));
                }
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
                emergency_reason: None,
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
