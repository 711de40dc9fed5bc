//! The emergency flows on the command line: `er request`, `er wait` and `er fetch` for the clinician or
//! emergency room; `scan` for the patient; `card` for the patient's emergency card.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use custodia_core::grant::{GrantId, UnverifiedGrant, VerifiedGrant};
use custodia_core::labels::SensitivityLabel;
use custodia_core::printable::{self, CardFace};
use custodia_core::purpose::PurposeOfUse;
use custodia_core::qr::{self, QrPayload};
use custodia_core::scope::Scope;
use custodia_core::time::parse_duration;
use custodia_wallet::LedgerClient;
use custodia_wallet::fhir_client::GatewayClient;
use custodia_wallet::vault::write_atomic;
use custodia_wallet::wallet::{AnswerReceived, CheckedRequest, open_card_grant};
use serde_json::{Value, json};

use crate::common::{WalletArgs, now, open_wallet, parse_all, read_input};

#[derive(Subcommand, Debug)]
pub enum ErCommand {
    /// Sign a request for access and show it as a QR code for the patient to scan.
    Request {
        #[command(flatten)]
        wallet: WalletArgs,
        /// The ledger this wallet is enrolled on (as a provider or emergency provider).
        #[arg(long, value_name = "URL", env = "CUSTODIA_LEDGER")]
        ledger: String,
        /// A SMART v2 scope to ask for. Repeatable.
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
        /// HL7 purpose of use (ETREAT, TREAT, ...).
        #[arg(long, value_name = "CODE", default_value = "ETREAT")]
        purpose: String,
        /// How long the asked grant would last: 90m, 12h, 7d.
        #[arg(long = "for", value_name = "DURATION", default_value = "12h")]
        duration: String,
        /// Write the QR code here (.png or .svg); it is also printed in the terminal.
        #[arg(long, value_name = "FILE")]
        qr: PathBuf,
        /// The label printed under the code (default: who is asking).
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Wait for the patient's answer; print the grant id once approved (exit 1 if declined).
    Wait {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long, value_name = "DURATION", default_value = "10m")]
        timeout: String,
        #[arg(long)]
        json: bool,
    },
    /// Read records through a gateway under a grant received, or an emergency card.
    Fetch {
        #[command(flatten)]
        wallet: WalletArgs,
        /// The gateway's base URL (without /fhir).
        #[arg(long, value_name = "URL")]
        gateway: String,
        /// The FHIR resource type, e.g. AllergyIntolerance.
        #[arg(long = "type", value_name = "TYPE")]
        resource_type: String,
        /// Read one resource by id instead of searching.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Search by category (a FHIR token).
        #[arg(long)]
        category: Option<String>,
        /// The grant received (default: the latest).
        #[arg(long, value_name = "ID", conflicts_with = "card")]
        grant: Option<String>,
        /// An image of the patient's emergency card (for enrolled emergency providers).
        #[arg(long, value_name = "IMAGE", conflicts_with = "grant_file", requires = "reason")]
        card: Option<PathBuf>,
        /// Why you open the card: unconscious, life-threatening, cannot-consent or other-urgent. The
        /// patient and their guardians see it under the read.
        #[arg(long, value_name = "CODE", requires = "card")]
        reason: Option<String>,
        /// A signed grant file the patient gave you (`custodia grant create --out`).
        #[arg(long, value_name = "FILE", conflicts_with = "grant")]
        grant_file: Option<PathBuf>,
        /// Print the searchset Bundle (or resource) as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// A photo or image file of the QR code.
    image: PathBuf,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Approve what is asked (or, with --scope, part of it).
    #[arg(long, conflicts_with = "decline")]
    approve: bool,
    #[arg(long)]
    decline: bool,
    /// With --approve: grant only these of the asked scopes. Repeatable.
    #[arg(long = "scope", value_name = "SCOPE", requires = "approve")]
    scopes: Vec<String>,
    /// With --approve: a shorter duration than asked.
    #[arg(long = "for", value_name = "DURATION", requires = "approve")]
    duration: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct CardArgs {
    #[command(flatten)]
    wallet: WalletArgs,
    /// What emergency staff may see. Repeatable. Default: allergies, medications, conditions, blood type.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// A sensitive label to include (none unless you say so). Repeatable.
    #[arg(long = "allow-label", value_name = "LABEL")]
    labels: Vec<String>,
    /// How long the card stands (at most 366d).
    #[arg(long = "for", value_name = "DURATION", default_value = "365d")]
    duration: String,
    /// The name printed on the card (default: the wallet's).
    #[arg(long)]
    name: Option<String>,
    /// The card file: .png, .svg or .pdf.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[arg(long)]
    json: bool,
}

fn duration_u32(text: &str) -> Result<u32> {
    let secs = parse_duration(text)?;
    u32::try_from(secs).with_context(|| format!("{text} is too long"))
}

/// A QR code drawn with block characters, two modules per character row, for a terminal.
fn terminal_qr(text: &str) -> Result<String> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .context("cannot draw the code")?;
    Ok(code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build())
}

fn write_labelled_qr(path: &Path, text: &str, label: &str) -> Result<()> {
    let bytes = match extension(path).as_deref() {
        Some("png") => printable::qr_png(text, label)?,
        Some("svg") => printable::qr_svg(text, label)?.into_bytes(),
        _ => bail!("the QR file must end in .png or .svg: {}", path.display()),
    };
    Ok(write_atomic(path, &bytes)?)
}

fn extension(path: &Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase)
}

pub fn er(command: ErCommand) -> Result<ExitCode> {
    match command {
        ErCommand::Request { wallet, ledger, scopes, purpose, duration, qr, label, json } => {
            let scopes: Vec<Scope> = parse_all(&scopes)?;
            let purpose: PurposeOfUse = purpose.parse()?;
            let duration = duration_u32(&duration)?;
            if !matches!(extension(&qr).as_deref(), Some("png" | "svg")) {
                bail!("--qr must end in .png or .svg: {}", qr.display());
            }
            let mut w = open_wallet(&wallet)?;
            let signed = w.create_access_request(&ledger, scopes, purpose, duration, now()?)?;
            let text = QrPayload::AccessRequest(signed.clone()).encode();
            let id = signed.claimed().id;
            let short = id.to_string()[..8].to_ascii_uppercase();
            let label = label.unwrap_or_else(|| format!("Custodia access request from {} · {short}", w.name()));
            write_labelled_qr(&qr, &text, &label)?;
            if json {
                let out = json!({
                    "id": id.to_string(),
                    "text": text,
                    "version": qr::version_of(&text)?,
                    "expires_at": signed.claimed().expires_at().to_string(),
                });
                println!("{out}");
            } else {
                println!("{id}");
                eprintln!("{}", terminal_qr(&text)?);
                eprintln!("{label}");
                eprintln!(
                    "scan it with the patient's Custodia app; answerable until {}",
                    signed.claimed().expires_at()
                );
                eprintln!("then: custodia er wait --wallet {}", wallet.wallet.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ErCommand::Wait { wallet, timeout, json } => {
            let timeout = Duration::from_secs(parse_duration(&timeout)?);
            let mut w = open_wallet(&wallet)?;
            if w.open_requests().is_empty() {
                bail!("this wallet has no request waiting for an answer (make one with `custodia er request`)");
            }
            let started = Instant::now();
            loop {
                let answers = w.collect_answers(now()?)?;
                if let Some(answer) = answers.last() {
                    return Ok(match answer {
                        AnswerReceived::Approved { grant, .. } => {
                            if json {
                                println!(
                                    "{}",
                                    json!({"approved": true, "grant": grant.id.to_string(), "patient": grant.patient.to_string(), "scopes": grant.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(), "not_after": grant.not_after.to_string()})
                                );
                            } else {
                                println!("{}", grant.id);
                                eprintln!(
                                    "approved until {}: {}",
                                    grant.not_after,
                                    grant.scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                                );
                            }
                            ExitCode::SUCCESS
                        }
                        AnswerReceived::Declined { request } => {
                            if json {
                                println!("{}", json!({"approved": false, "request": request.to_string()}));
                            }
                            eprintln!("custodia: the patient declined request {request}");
                            ExitCode::from(1)
                        }
                    });
                }
                if started.elapsed() >= timeout {
                    bail!("no answer within {}s", timeout.as_secs());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        ErCommand::Fetch { wallet, gateway, resource_type, id, category, grant, card, reason, grant_file, json } => {
            let under = match (grant, card, grant_file) {
                (_, Some(card), _) => {
                    let reason = reason.unwrap_or_default();
                    if custodia_core::entry::emergency_reason_words(&reason).is_none() {
                        let codes: Vec<&str> =
                            custodia_core::entry::EMERGENCY_REASONS.iter().map(|(c, _)| *c).collect();
                        bail!("--reason {reason:?}: give one of {}", codes.join(", "));
                    }
                    Under::Card(card, reason)
                }
                (_, _, Some(file)) => Under::File(file),
                (Some(id), _, _) => Under::Received(Some(id)),
                _ => Under::Received(None),
            };
            fetch(&wallet, &gateway, &resource_type, id.as_deref(), category.as_deref(), under, json)
        }
    }
}

/// What a fetch reads under.
enum Under {
    /// A grant received through `er wait` (by id, or the latest).
    Received(Option<String>),
    /// A signed grant file.
    File(PathBuf),
    /// An emergency card's image, and the reason it is opened.
    Card(PathBuf, String),
}

fn fetch(
    wallet: &WalletArgs,
    gateway: &str,
    resource_type: &str,
    id: Option<&str>,
    category: Option<&str>,
    under: Under,
    json: bool,
) -> Result<ExitCode> {
    let valid = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if !valid(resource_type) || id.is_some_and(|i| !valid(i)) {
        bail!("--type and --id are FHIR names and ids (letters, digits, - and .)");
    }
    let client = GatewayClient::new(gateway)?;
    let w = open_wallet(wallet)?;
    let (grant, card_key): (VerifiedGrant, Option<(custodia_core::Identity, String)>) = match under {
        Under::Card(image, reason) => {
            let image = image.as_path();
            let bytes = read_input(image, "card image")?;
            let text = qr::decode_image(&bytes).with_context(|| format!("{}", image.display()))?;
            let QrPayload::EmergencyCard(card) = QrPayload::decode(&text)? else {
                bail!("{} is not an emergency card", image.display());
            };
            let ledger = LedgerClient::new(&card.ledger)?;
            let grant = open_card_grant(&ledger, w.identity(), &card)?;
            (grant, Some((card.identity(), reason)))
        }
        Under::File(file) => {
            let bytes = read_input(&file, "grant")?;
            let grant = UnverifiedGrant::decode(&bytes).with_context(|| format!("{}", file.display()))?.verify()?;
            if grant.grantee != w.signing_key() {
                bail!("{} is a grant to {}, not to this wallet", file.display(), grant.grantee);
            }
            (grant, None)
        }
        Under::Received(grant) => {
            let grant = match grant {
                Some(id) => w.received_grant(id.parse::<GrantId>().map_err(|e| anyhow::anyhow!("--grant: {e}"))?)?,
                None => {
                    w.received_grants().pop().map(|r| r.grant).context(
                        "this wallet has received no grant (run `custodia er wait` after the patient approves)",
                    )?
                }
            };
            (grant, None)
        }
    };
    let mut target = format!("/fhir/{resource_type}");
    if let Some(id) = id {
        target.push('/');
        target.push_str(id);
    } else if let Some(c) = category {
        target.push_str("?category=");
        target.push_str(&percent_encode(c));
    }
    let card = card_key.as_ref().map(|(key, reason)| (key, reason.as_str()));
    let reply = client.get(&target, &grant, w.identity(), card, None, now()?)?;
    if let Some(why) = reply.refusal() {
        eprintln!("custodia: the gateway refused: {why}");
        return Ok(ExitCode::from(1));
    }
    if json {
        println!("{:#}", reply.body);
    } else {
        print_resources(&reply.body);
    }
    Ok(ExitCode::SUCCESS)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One line per resource: type/id and its most telling text.
fn print_resources(body: &Value) {
    let one = |r: &Value| {
        let text = |p: &str| r.pointer(p).and_then(Value::as_str);
        let what = text("/code/text")
            .or_else(|| text("/code/coding/0/display"))
            .or_else(|| text("/medicationCodeableConcept/text"))
            .or_else(|| text("/medicationCodeableConcept/coding/0/display"))
            .or_else(|| text("/type/text"))
            .or_else(|| text("/conclusion"))
            .unwrap_or("");
        println!("{}/{}  {what}", text("/resourceType").unwrap_or("?"), text("/id").unwrap_or("?"));
    };
    if body.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        let entries = body.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for e in entries {
            if let Some(r) = e.get("resource") {
                one(r);
            }
        }
        eprintln!("{} record(s)", body.get("total").and_then(Value::as_u64).unwrap_or(entries.len() as u64));
    } else {
        one(body);
    }
}

pub fn scan(args: ScanArgs) -> Result<ExitCode> {
    let bytes = read_input(&args.image, "image")?;
    let text = qr::decode_image(&bytes).with_context(|| format!("{}", args.image.display()))?;
    let signed = match QrPayload::decode(&text)? {
        QrPayload::AccessRequest(r) => r,
        QrPayload::Contact(_) => {
            bail!("{} is a contact card: use it with `custodia grant create --to`", args.image.display())
        }
        QrPayload::EmergencyCard(_) => {
            bail!("{} is an emergency card, for emergency staff to scan", args.image.display())
        }
        _ => bail!("{} holds a kind of Custodia QR code this command does not know", args.image.display()),
    };
    let mut w = open_wallet(&args.wallet)?;
    let checked = w.check_access_request(&signed, now()?)?;
    let approval = if args.approve {
        let scopes: Vec<Scope> =
            if args.scopes.is_empty() { checked.request.scopes.clone() } else { parse_all(&args.scopes)? };
        let duration = match &args.duration {
            Some(d) => duration_u32(d)?,
            None => checked.request.duration_seconds,
        };
        Some((scopes, duration))
    } else {
        None
    };
    if !args.approve && !args.decline {
        show_request(&checked, args.json);
        eprintln!("answer with --approve (optionally --scope ... --for ...) or --decline");
        return Ok(ExitCode::SUCCESS);
    }
    let grant = w.answer_access_request(&checked, approval, now()?)?;
    if args.json {
        println!(
            "{}",
            json!({
                "request": checked.request.id.to_string(),
                "requester": checked.requester.name,
                "organisation": checked.requester.org,
                "approved": grant.is_some(),
                "grant": grant.as_ref().map(|g| g.id.to_string()),
            })
        );
    } else {
        show_request(&checked, false);
        match grant {
            Some(g) => println!("approved: grant {} until {}", g.id, g.not_after),
            None => println!("declined"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_request(checked: &CheckedRequest, json: bool) {
    let r = &checked.request;
    let m = &checked.requester;
    if json {
        println!(
            "{}",
            json!({
                "request": r.id.to_string(),
                "requester": {"key": m.key.to_string(), "name": m.name, "organisation": m.org, "role": m.role.as_str(), "verified": true},
                "purpose": r.purpose.code(),
                "scopes": r.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "duration_seconds": r.duration_seconds,
                "expires_at": r.expires_at().to_string(),
            })
        );
        return;
    }
    println!(
        "verified: {}, {} (enrolled {} provider, ledger entry {})",
        m.name,
        m.org,
        if m.role.as_str() == "emergency" { "emergency" } else { "as a" },
        m.index
    );
    println!("asks for: {} ({})", r.purpose.display(), r.purpose);
    for s in &r.scopes {
        println!("  {s}");
    }
    println!("for:      {} hours", r.duration_seconds / 3600);
}

pub fn card(args: CardArgs) -> Result<ExitCode> {
    let format = extension(&args.out);
    if !matches!(format.as_deref(), Some("png" | "svg" | "pdf")) {
        bail!("--out must end in .png, .svg or .pdf: {}", args.out.display());
    }
    let scope_texts: Vec<String> = if args.scopes.is_empty() {
        printable::CARD_SCOPES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.scopes.clone()
    };
    let scopes: Vec<Scope> = parse_all(&scope_texts)?;
    let labels: Vec<SensitivityLabel> = parse_all(&args.labels)?;
    let duration = parse_duration(&args.duration)?;
    custodia_core::grant::check_duration(duration)?;
    let mut w = open_wallet(&args.wallet)?;
    let name = args.name.clone().unwrap_or_else(|| w.name().to_owned());
    let (card, grant, index) = w.create_emergency_card(scopes, labels, duration, now()?)?;
    let text = QrPayload::EmergencyCard(card.clone()).encode();
    let face = CardFace {
        name,
        covers: printable::covered_words(&scope_texts, &args.labels),
        valid_until: grant.not_after.to_string().chars().take(10).collect(),
    };
    let bytes = match format.as_deref() {
        Some("png") => printable::card_png(&text, &face)?,
        Some("svg") => printable::card_svg(&text, &face)?.into_bytes(),
        _ => printable::card_pdf(&text, &face)?,
    };
    write_atomic(&args.out, &bytes)?;
    drop(card);
    if args.json {
        println!(
            "{}",
            json!({"grant": grant.id.to_string(), "index": index, "file": args.out.display().to_string(), "not_after": grant.not_after.to_string(), "version": qr::version_of(&text)?})
        );
    } else {
        println!("emergency card written to {} (grant {} on the ledger, entry {index})", args.out.display(), grant.id);
        println!(
            "it stands until {}; revoke it with `custodia grant revoke {}` if the card is lost",
            grant.not_after, grant.id
        );
    }
    Ok(ExitCode::SUCCESS)
}
