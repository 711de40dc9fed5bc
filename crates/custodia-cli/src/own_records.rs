//! `custodia records` and `custodia grant preview`: the patient's own records at a hospital, and what a
//! grant would release of them, read through the hospital's gateway as the patient.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use custodia_core::grant::GrantRequest;
use custodia_wallet::fhir_client::GatewayClient;
use custodia_wallet::notices::{records_word, refusal_in_words};
use custodia_wallet::own_records::{self, MAX_PER_TYPE};
use serde_json::{Value, json};

use crate::common::{WalletArgs, emit, now, open_wallet};

#[derive(Args, Debug)]
pub(crate) struct RecordsArgs {
    #[command(flatten)]
    wallet: WalletArgs,
    /// The hospital's gateway (without /fhir).
    #[arg(long, value_name = "URL")]
    gateway: String,
    /// Only records of this FHIR type (default: every type the gateway offers). Repeatable.
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Write the records here as one FHIR R4 Bundle (type collection).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the Bundle as JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

/// The types asked for, or every type the gateway offers.
fn types_to_read(client: &GatewayClient, asked: &[String]) -> Result<Vec<String>> {
    let valid = |t: &str| !t.is_empty() && t.len() <= 64 && t.chars().all(|c| c.is_ascii_alphanumeric());
    if let Some(bad) = asked.iter().find(|t| !valid(t)) {
        bail!("--type {bad:?} is not a FHIR resource type");
    }
    if !asked.is_empty() {
        return Ok(asked.to_vec());
    }
    Ok(own_records::gateway_types(client)?)
}

/// "your lab results: 3", one line per kind of record, for people.
fn summary(records: &[Value]) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for r in records {
        let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
        let category = custodia_gateway::fhir::category_word(r);
        *counts.entry(records_word(&text("resourceType").unwrap_or_default(), category.as_deref())).or_default() += 1;
    }
    counts.into_iter().map(|(w, n)| (w.to_owned(), n)).collect()
}

pub(crate) fn records(args: &RecordsArgs) -> Result<ExitCode> {
    let client = GatewayClient::new(&args.gateway)?;
    let types = types_to_read(&client, &args.types)?;
    let w = open_wallet(&args.wallet)?;
    let now = now()?;
    let records = own_records::fetch_own(&client, &w.service_identity(), &types, now)?;
    let bundle = own_records::bundle(&records, now);
    if let Some(path) = &args.out {
        emit(Some(path), &serde_json::to_string_pretty(&bundle)?)?;
        eprintln!("Wrote {} records to {} (a FHIR Bundle).", records.len(), path.display());
    }
    if args.json {
        println!("{bundle:#}");
    } else {
        println!("Your records at {}: {}", client.base(), records.len());
        for (words, n) in summary(&records) {
            println!("  {words}: {n}");
        }
        println!("(at most {MAX_PER_TYPE} of each type; this read is in your access log)");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn preview(wallet: &WalletArgs, gateway: &str, request: GrantRequest, json_out: bool) -> Result<ExitCode> {
    let client = GatewayClient::new(gateway)?;
    let types = types_to_read(&client, &[])?;
    let w = open_wallet(wallet)?;
    let now = now()?;
    let patient = w.service_identity();
    // A grant signed to be looked at only: never stored, never posted.
    let draft = request.sign(&patient, now)?;
    let records = own_records::fetch_own(&client, &patient, &types, now)?;
    let preview = own_records::preview(&draft, &records, now);
    if json_out {
        let out = json!({
            "gateway": client.base(),
            "released": preview.released.iter().map(own_records::reference).collect::<Vec<_>>(),
            "hidden": preview.hidden.iter().map(|(r, why)| json!({"record": own_records::reference(r), "why": why})).collect::<Vec<_>>(),
        });
        println!("{out:#}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("They would see {} of your {} records at {}:", preview.released.len(), records.len(), client.base());
    for (words, n) in summary(&preview.released) {
        println!("  {words}: {n}");
    }
    let mut hidden: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    for (r, why) in &preview.hidden {
        let (words, _) = summary(std::slice::from_ref(r)).pop().unwrap_or_default();
        *hidden.entry((words, refusal_in_words(why))).or_default() += 1;
    }
    println!("Hidden from them: {}", preview.hidden.len());
    for ((words, why), n) in hidden {
        println!("  {words}: {n} ({why})");
    }
    Ok(ExitCode::SUCCESS)
}
