//! `cargo xtask run`: a scripted walk through the `custodia` CLI, printing each command and its output.
//!
//! It makes a patient's and a doctor's wallet in `target/demo/`, shows the patient's contact card as a
//! QR code and reads it back, grants the doctor seven days of lab results for treatment, checks that
//! grant against sample FHIR resources (one allowed, three denied for different reasons), exports it as a
//! FHIR Consent and revokes it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::sh;

const DEMO_PASSPHRASE: &str = "demo passphrase, not for real use";

struct Demo {
    bin: PathBuf,
    dir: PathBuf,
}

impl Demo {
    /// Runs `custodia args...`, echoing it; returns stdout. `expect` is the exit code the step must give.
    fn custodia(&self, args: &[&str], expect: i32) -> Result<String> {
        println!("\n$ custodia {}", args.join(" "));
        let out = Command::new(&self.bin)
            .args(args)
            .env("CUSTODIA_PASSPHRASE", DEMO_PASSPHRASE)
            .current_dir(&self.dir)
            .output()
            .context("cannot run custodia")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        let code = out.status.code().unwrap_or(-1);
        if code != expect {
            bail!("custodia {} exited with {code}, expected {expect}", args.join(" "));
        }
        Ok(stdout)
    }
}

fn say(text: &str) {
    println!("\n# {text}");
}

pub fn run() -> Result<()> {
    sh::build_packages(&["custodia-cli"])?;
    let root = sh::project_root();
    let dir = root.join("target/demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let fhir = root.join("tests/data/fhir");
    let resource = |name: &str| -> String { fhir.join(name).to_string_lossy().into_owned() };
    let demo = Demo { bin: sh::debug_dir(&root).join("custodia"), dir: dir.clone() };

    say(
        "A patient and a doctor each create a wallet (Argon2id-protected; the passphrase comes from CUSTODIA_PASSPHRASE here).",
    );
    demo.custodia(&["wallet", "init", "--wallet", "patient", "--name", "Ada Lovelace"], 0)?;
    demo.custodia(&["wallet", "init", "--wallet", "doctor", "--name", "Dr. Grace Hopper"], 0)?;

    say("The patient shows a contact card as a QR code; anyone can read it back.");
    demo.custodia(&["wallet", "show", "--wallet", "patient", "--qr", "patient-card.png"], 0)?;
    demo.custodia(&["qr", "decode", "patient-card.png"], 0)?;

    say("The doctor's signing key, as the patient would get it from the doctor's card.");
    let shown = demo.custodia(&["wallet", "show", "--wallet", "doctor", "--json"], 0)?;
    let doctor_key = serde_json::from_str::<serde_json::Value>(&shown)?["signing_key"]
        .as_str()
        .map(str::to_owned)
        .context("wallet show --json has no signing_key")?;

    say("The patient grants the doctor lab results, for treatment, for seven days, at most 20 reads.");
    demo.custodia(
        &[
            "grant",
            "create",
            "--wallet",
            "patient",
            "--to",
            &doctor_key,
            "--scope",
            "patient/Observation.rs?category=laboratory",
            "--purpose",
            "TREAT",
            "--for",
            "7d",
            "--max-reads",
            "20",
            "--note",
            "HbA1c follow-up",
            "--out",
            "grant.json",
        ],
        0,
    )?;
    demo.custodia(&["grant", "show", "grant.json"], 0)?;

    say("What the grant allows: an HbA1c lab result, yes.");
    demo.custodia(&["grant", "check", "grant.json", "--resource", &resource("observation-lab-hba1c.json")], 0)?;
    say("Blood pressure is a vital sign, not a lab result: out of scope.");
    demo.custodia(&["grant", "check", "grant.json", "--resource", &resource("observation-vitals-bp.json")], 1)?;
    say("An HIV test is a lab result, but labelled HIV, which the grant does not name.");
    demo.custodia(&["grant", "check", "grant.json", "--resource", &resource("observation-lab-hiv.json")], 1)?;
    say("The same lab result read for research: wrong purpose.");
    demo.custodia(
        &["grant", "check", "grant.json", "--resource", &resource("observation-lab-hba1c.json"), "--purpose", "HRESCH"],
        1,
    )?;
    say("And next month: expired.");
    let later = "2099-01-01T00:00:00Z";
    demo.custodia(
        &["grant", "check", "grant.json", "--resource", &resource("observation-lab-hba1c.json"), "--at", later],
        1,
    )?;

    say("A tampered grant (the doctor widens it to every record) no longer verifies.");
    tamper(&dir.join("grant.json"), &dir.join("tampered.json"))?;
    demo.custodia(&["grant", "check", "tampered.json", "--resource", &resource("observation-lab-hba1c.json")], 1)?;

    say("The grant as a FHIR R4 Consent, for the hospital's records.");
    let consent = demo.custodia(&["grant", "export-fhir", "grant.json"], 0)?;
    std::fs::write(dir.join("consent.json"), consent)?;

    say("The patient lists and revokes the grant.");
    let listed = demo.custodia(&["grant", "list", "--wallet", "patient", "--json"], 0)?;
    let id = serde_json::from_str::<serde_json::Value>(&listed)?[0]["id"]
        .as_str()
        .map(str::to_owned)
        .context("grant list --json has no id")?;
    demo.custodia(
        &["grant", "revoke", "--wallet", "patient", &id, "--reason", "follow-up done", "--out", "revocation.json"],
        0,
    )?;
    demo.custodia(&["grant", "list", "--wallet", "patient"], 0)?;

    println!("\nDemo finished; its files are in {}", dir.display());
    Ok(())
}

/// Widens the payload's scopes without re-signing, as a dishonest grantee might.
fn tamper(from: &Path, to: &Path) -> Result<()> {
    use data_encoding::BASE64;
    let mut envelope: serde_json::Value = serde_json::from_slice(&std::fs::read(from)?)?;
    let payload = BASE64.decode(envelope["payload"].as_str().context("no payload")?.as_bytes())?;
    let mut grant: serde_json::Value = serde_json::from_slice(&payload)?;
    grant["scopes"] = serde_json::json!(["patient/*.rs"]);
    envelope["payload"] = serde_json::json!(BASE64.encode(&serde_json::to_vec(&grant)?));
    std::fs::write(to, serde_json::to_vec_pretty(&envelope)?)?;
    Ok(())
}
