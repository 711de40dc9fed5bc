//! The `custodia` binary driven as a user would: real files, real processes, exit codes and messages.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};

const PASS: &str = "correct horse battery staple";

fn fhir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/fhir").join(name)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn custodia_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custodia"));
    cmd.args(args).current_dir(dir).env_remove("CUSTODIA_PASSPHRASE").env_remove("CUSTODIA_NEW_PASSPHRASE");
    cmd.env_remove("CUSTODIA_WALLET").env("RUST_BACKTRACE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output { status, stdout, stderr } = cmd.output().expect("custodia runs");
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "custodia panicked on {args:?}:\n{}", run.stderr);
    run
}

fn custodia(dir: &Path, args: &[&str]) -> Run {
    custodia_with(dir, args, &[("CUSTODIA_PASSPHRASE", PASS)])
}

/// Asserts a failure with the given exit code and a one-line error mentioning `needle`.
fn assert_fails(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let message = format!("{}{}", run.stdout, run.stderr);
    assert!(message.to_lowercase().contains(&needle.to_lowercase()), "expected {needle:?} in: {message}");
    assert_eq!(run.stderr.trim().lines().count().max(1), 1, "error is not one line: {}", run.stderr);
}

fn json(run: &Run) -> Value {
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    serde_json::from_str(&run.stdout).expect("valid JSON on stdout")
}

fn file_hash(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

/// A patient wallet, a doctor's key, and a grant from one to the other written to `grant.json`.
struct World {
    dir: tempfile::TempDir,
    doctor_key: String,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(custodia(dir.path(), &["wallet", "init", "--wallet", "patient", "--name", "Ada"]).code, 0);
        assert_eq!(custodia(dir.path(), &["wallet", "init", "--wallet", "doctor", "--name", "Dr Hopper"]).code, 0);
        let doctor = json(&custodia(dir.path(), &["wallet", "show", "--wallet", "doctor", "--json"]));
        World { dir, doctor_key: doctor["signing_key"].as_str().unwrap().to_owned() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn grant(&self, extra: &[&str]) -> Run {
        let mut args = vec!["grant", "create", "--wallet", "patient", "--to", &self.doctor_key];
        args.extend_from_slice(extra);
        custodia(self.path(), &args)
    }

    fn lab_grant(&self) {
        let run = self.grant(&[
            "--scope",
            "patient/Observation.rs?category=laboratory",
            "--purpose",
            "TREAT",
            "--for",
            "7d",
            "--out",
            "grant.json",
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }

    fn check(&self, grant: &str, resource: &str, extra: &[&str]) -> Run {
        let r = fhir(resource);
        let mut args = vec!["grant", "check", grant, "--resource", r.to_str().unwrap()];
        args.extend_from_slice(extra);
        custodia(self.path(), &args)
    }
}

#[test]
fn wallet_show_json_has_the_documented_fields() {
    let w = World::new();
    let shown = json(&custodia(w.path(), &["wallet", "show", "--wallet", "patient", "--json"]));
    assert_eq!(shown["name"], "Ada");
    assert!(shown["signing_key"].as_str().unwrap().starts_with("cusig1"));
    assert!(shown["encryption_key"].as_str().unwrap().starts_with("cubox1"));
    assert_eq!(shown["fingerprint"].as_str().unwrap().len(), 19);
}

#[test]
fn init_refuses_an_existing_wallet() {
    let w = World::new();
    let before = file_hash(&w.path().join("patient/wallet.vault"));
    assert_fails(&custodia(w.path(), &["wallet", "init", "--wallet", "patient"]), 2, "already a wallet");
    assert_eq!(file_hash(&w.path().join("patient/wallet.vault")), before);
}

#[test]
fn grant_lifecycle_show_check_export_revoke() {
    let w = World::new();
    w.lab_grant();
    let shown = json(&custodia(w.path(), &["grant", "show", "grant.json", "--json"]));
    for field in ["id", "patient", "grantee", "scopes", "purpose", "not_before", "not_after"] {
        assert!(!shown[field].is_null(), "grant show --json lacks {field}");
    }
    assert_eq!(shown["grantee"], w.doctor_key.as_str());
    assert_eq!(shown["scopes"][0], "patient/Observation.rs?category=laboratory");

    assert_eq!(w.check("grant.json", "observation-lab-hba1c.json", &[]).stdout.trim(), "allowed");
    assert_fails(&w.check("grant.json", "observation-vitals-bp.json", &[]), 1, "out of scope");
    assert_fails(&w.check("grant.json", "observation-lab-hiv.json", &[]), 1, "label not allowed");
    assert_fails(&w.check("grant.json", "observation-lab-hba1c.json", &["--purpose", "HRESCH"]), 1, "purpose mismatch");
    assert_fails(&w.check("grant.json", "observation-lab-hba1c.json", &["--at", "2099-01-01T00:00:00Z"]), 1, "expired");
    assert_fails(
        &w.check("grant.json", "observation-lab-hba1c.json", &["--at", "2000-01-01T00:00:00Z"]),
        1,
        "not yet valid",
    );

    let consent = json(&custodia(w.path(), &["grant", "export-fhir", "grant.json"]));
    assert_eq!(consent["resourceType"], "Consent");
    assert_eq!(consent["id"], shown["id"]);

    let id = shown["id"].as_str().unwrap();
    let revoked = custodia(w.path(), &["grant", "revoke", "--wallet", "patient", id, "--out", "revocation.json"]);
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    let listed = json(&custodia(w.path(), &["grant", "list", "--wallet", "patient", "--json"]));
    assert!(listed[0]["revoked_at"].is_string());
    assert_fails(&custodia(w.path(), &["grant", "revoke", "--wallet", "patient", id]), 2, "already revoked");
}

#[test]
fn labels_named_in_the_grant_are_shown() {
    let w = World::new();
    let run = w.grant(&[
        "--scope",
        "patient/*.rs",
        "--allow-label",
        "PSY",
        "--purpose",
        "TREAT",
        "--for",
        "1d",
        "--out",
        "g.json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(w.check("g.json", "condition-depression-psy.json", &[]).code, 0);
    assert_fails(&w.check("g.json", "observation-lab-hiv.json", &[]), 1, "HIV");
}

#[test]
fn a_tampered_grant_is_a_no_and_a_malformed_one_is_bad_input() {
    let w = World::new();
    w.lab_grant();
    let mut envelope: Value = serde_json::from_slice(&std::fs::read(w.path().join("grant.json")).unwrap()).unwrap();
    let b64 = data_encoding::BASE64;
    let mut payload: Value =
        serde_json::from_slice(&b64.decode(envelope["payload"].as_str().unwrap().as_bytes()).unwrap()).unwrap();
    payload["scopes"] = serde_json::json!(["patient/*.rs"]);
    envelope["payload"] = Value::String(b64.encode(&serde_json::to_vec(&payload).unwrap()));
    std::fs::write(w.path().join("tampered.json"), envelope.to_string()).unwrap();
    assert_fails(&w.check("tampered.json", "observation-vitals-bp.json", &[]), 1, "bad signature");
    assert_fails(&custodia(w.path(), &["grant", "show", "tampered.json"]), 1, "bad signature");
    assert_fails(&custodia(w.path(), &["grant", "export-fhir", "tampered.json"]), 1, "bad signature");

    std::fs::write(w.path().join("junk.json"), "{\"payload\": 3}").unwrap();
    assert_fails(&w.check("junk.json", "observation-lab-hba1c.json", &[]), 2, "malformed grant");
    std::fs::write(w.path().join("not-a-resource.json"), "[1, 2]").unwrap();
    let bad = custodia(
        w.path(),
        &["grant", "check", "grant.json", "--resource", w.path().join("not-a-resource.json").to_str().unwrap()],
    );
    assert_fails(&bad, 2, "not a FHIR resource");
}

#[test]
fn bad_grant_arguments_are_refused_before_unlocking() {
    let w = World::new();
    // No passphrase at all: if it got as far as unlocking, the error would be about the passphrase.
    let cases: [(&[&str], &str); 5] = [
        (&["--scope", "patient/Observation.read", "--purpose", "TREAT", "--for", "7d"], "smart v1"),
        (&["--scope", "patient/*.rs", "--purpose", "CURIOSITY", "--for", "7d"], "purpose"),
        (&["--scope", "patient/*.rs", "--purpose", "TREAT", "--for", "7 days"], "duration"),
        (&["--scope", "patient/*.rs", "--allow-label", "PSYCH", "--purpose", "TREAT", "--for", "7d"], "label"),
        (&["--scope", "patient/*.rs", "--purpose", "TREAT", "--for", "400d"], "366 days"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["grant", "create", "--wallet", "patient", "--to", &w.doctor_key];
        args.extend_from_slice(extra);
        assert_fails(&custodia_with(w.path(), &args, &[]), 2, needle);
    }
    let run = custodia(
        w.path(),
        &[
            "grant",
            "create",
            "--wallet",
            "patient",
            "--to",
            "cubox1qqq",
            "--scope",
            "patient/*.rs",
            "--purpose",
            "TREAT",
            "--for",
            "1d",
        ],
    );
    assert_fails(&run, 2, "--to");
}

#[test]
fn wrong_passphrase_and_damaged_vaults_change_nothing() {
    let w = World::new();
    let vault = w.path().join("patient/wallet.vault");
    let before = file_hash(&vault);
    let run = custodia_with(w.path(), &["wallet", "show", "--wallet", "patient"], &[("CUSTODIA_PASSPHRASE", "nope")]);
    assert_fails(&run, 2, "wrong passphrase");
    assert_eq!(file_hash(&vault), before);

    let bytes = std::fs::read(&vault).unwrap();
    for (name, damaged) in
        [("truncated", bytes[..bytes.len() / 2].to_vec()), ("empty", vec![]), ("header only", bytes[..40].to_vec())]
    {
        std::fs::write(&vault, &damaged).unwrap();
        let run = custodia(w.path(), &["wallet", "show", "--wallet", "patient"]);
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{name}: {}", run.stderr);
        assert_eq!(std::fs::read(&vault).unwrap(), damaged, "{name}: the vault was changed");
    }
    let missing = custodia(w.path(), &["wallet", "show", "--wallet", "nowhere"]);
    assert_fails(&missing, 2, "no wallet");
}

#[test]
fn passwd_and_passphrase_sources() {
    let w = World::new();
    let run = custodia_with(
        w.path(),
        &["wallet", "passwd", "--wallet", "patient"],
        &[("CUSTODIA_PASSPHRASE", PASS), ("CUSTODIA_NEW_PASSPHRASE", "a new one")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_fails(&custodia(w.path(), &["wallet", "show", "--wallet", "patient"]), 2, "wrong passphrase");
    std::fs::write(w.path().join("pass.txt"), "a new one\n").unwrap();
    let run = custodia_with(w.path(), &["wallet", "show", "--wallet", "patient", "--passphrase-file", "pass.txt"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // No passphrase anywhere and no terminal: a clear error, not a hang.
    assert_fails(&custodia_with(w.path(), &["wallet", "show", "--wallet", "patient"], &[]), 2, "no passphrase");
}

#[test]
fn a_second_process_is_told_the_wallet_is_open() {
    let w = World::new();
    let _held = custodia_wallet::vault::WalletLock::acquire(&w.path().join("patient")).unwrap();
    assert_fails(&custodia(w.path(), &["wallet", "show", "--wallet", "patient"]), 2, "another custodia process");
}

#[test]
fn contact_card_qr_round_trips_through_an_image() {
    let w = World::new();
    let shown = json(&custodia(w.path(), &["wallet", "show", "--wallet", "patient", "--json", "--qr", "card.png"]));
    assert_eq!(custodia(w.path(), &["wallet", "show", "--wallet", "patient", "--qr", "card.svg"]).code, 0);
    assert!(std::fs::read_to_string(w.path().join("card.svg")).unwrap().contains("<svg"));
    let decoded = json(&custodia(w.path(), &["qr", "decode", "card.png", "--json"]));
    assert_eq!(decoded["kind"], "contact");
    assert_eq!(decoded["name"], "Ada");
    assert_eq!(decoded["signing_key"], shown["signing_key"]);
    assert_eq!(decoded["fingerprint"], shown["fingerprint"]);

    std::fs::write(w.path().join("not-an-image.png"), b"hello").unwrap();
    assert_fails(&custodia(w.path(), &["qr", "decode", "not-an-image.png"]), 2, "image");
    assert_fails(
        &custodia(w.path(), &["wallet", "show", "--wallet", "patient", "--qr", "card.gif"]),
        2,
        ".png or .svg",
    );
}

/// A port nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A one-route HTTP server that answers every request with `body`.
fn serve_text(body: String) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let mut stream = stream;
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
        }
    });
    url
}

/// A C2SP verifier key for the Ed25519 base point, named `name` (its key id computed as the spec says).
fn vkey(name: &str) -> String {
    let mut public = vec![0x58];
    public.extend_from_slice(&[0x66; 31]);
    let mut typed = vec![0x01];
    typed.extend_from_slice(&public);
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(&typed);
    let id = h.finalize();
    format!("{name}+{:02x}{:02x}{:02x}{:02x}+{}", id[0], id[1], id[2], id[3], data_encoding::BASE64.encode(&typed))
}

#[test]
fn ledger_commands_need_an_enrolled_wallet_and_issue_nothing_otherwise() {
    let w = World::new();
    assert_fails(&custodia(w.path(), &["wallet", "sync", "--wallet", "patient"]), 2, "not enrolled");
    let run = w.grant(&["--scope", "patient/*.rs", "--purpose", "TREAT", "--for", "1d", "--post"]);
    assert_fails(&run, 2, "not enrolled");
    let listed = json(&custodia(w.path(), &["grant", "list", "--wallet", "patient", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 0, "a grant was issued although it could not be posted");
    // Without a ledger, revoking stays local, as before.
    w.lab_grant();
    let id = json(&custodia(w.path(), &["grant", "show", "grant.json", "--json"]))["id"].as_str().unwrap().to_owned();
    let revoked = custodia(w.path(), &["grant", "revoke", "--wallet", "patient", &id]);
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    assert_fails(&custodia(w.path(), &["grant", "post", "--wallet", "patient", &id]), 2, "not enrolled");
}

#[test]
fn bad_ledger_urls_and_keys_are_refused_before_unlocking() {
    let w = World::new();
    // No passphrase: an error about the passphrase would mean the wallet was unlocked first.
    let enroll = |url: &str, extra: &[&str]| {
        let mut args = vec!["wallet", "enroll", "--wallet", "patient", "--ledger", url];
        args.extend_from_slice(extra);
        custodia_with(w.path(), &args, &[])
    };
    assert_fails(&enroll("ftp://ledger.example", &[]), 2, "http://");
    assert_fails(&enroll("http://127.0.0.1:8080/some/path", &[]), 2, "no path");
    assert_fails(&enroll("http://127.0.0.1:8080", &["--verifier-key", "not-a-key"]), 2, "verifier key");
    let audit = custodia_with(w.path(), &["ledger", "audit", "--ledger", "localhost:8080"], &[]);
    assert_fails(&audit, 2, "not a ledger url");
}

#[test]
fn an_unreachable_ledger_is_a_clear_error_and_changes_nothing() {
    let w = World::new();
    let vault = w.path().join("patient/wallet.vault");
    let before = file_hash(&vault);
    let url = closed_port_url();
    let run = custodia(w.path(), &["wallet", "enroll", "--wallet", "patient", "--ledger", &url]);
    assert_fails(&run, 2, "cannot reach the ledger");
    assert_eq!(file_hash(&vault), before);
    assert_fails(&custodia(w.path(), &["ledger", "audit", "--ledger", &url]), 2, "cannot reach the ledger");
}

#[test]
fn a_checkpoint_that_does_not_verify_is_a_no() {
    let w = World::new();
    let name = "fake.test/ledger";
    let zero_root = data_encoding::BASE64.encode(&[0u8; 32]);
    let mut sig = [0u8; 68];
    let key = vkey(name);
    let id = key.split('+').nth(1).unwrap();
    for (i, byte) in sig.iter_mut().take(4).enumerate() {
        *byte = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap();
    }
    let note = format!("{name}\n1\n{zero_root}\n\n\u{2014} {name} {}\n", data_encoding::BASE64.encode(&sig));
    let url = serve_text(note);
    let run = custodia(w.path(), &["ledger", "audit", "--ledger", &url, "--verifier-key", &key]);
    assert_fails(&run, 1, "does not verify");
}

#[test]
fn ledger_enroll_takes_keys_or_a_contact_card() {
    let w = World::new();
    assert_eq!(custodia(w.path(), &["wallet", "show", "--wallet", "doctor", "--qr", "doctor.png"]).code, 0);
    let url = closed_port_url();
    let base =
        ["ledger", "enroll", "--wallet", "patient", "--ledger", &url, "--role", "provider", "--org", "St Mary's"];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        custodia(w.path(), &args)
    };
    // The card is read (the name comes from it); only the unreachable ledger stops the enrollment.
    assert_fails(&with(&["--contact", "doctor.png"]), 2, "cannot reach the ledger");
    assert_fails(&with(&["--contact", "CUST1:C:NOTACARD"]), 2, "--contact");
    assert_fails(&with(&["--key", &w.doctor_key, "--box-key", &w.doctor_key, "--name", "Dr"]), 2, "--box-key");
    // Usage errors are clap's, several lines long.
    let usage = |run: Run, needle: &str| {
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains(needle), "expected {needle:?} in: {}", run.stderr);
    };
    usage(with(&["--key", &w.doctor_key, "--name", "Dr Hopper"]), "--box-key");
    usage(with(&["--contact", "doctor.png", "--key", &w.doctor_key]), "cannot be used with");
    usage(with(&["--key", &w.doctor_key]), "--name");
    let mut bad_role = base.to_vec();
    bad_role[7] = "janitor";
    usage(custodia(w.path(), &bad_role), "unknown role");
}

#[test]
fn post_access_is_a_marked_test_tool_and_checks_its_arguments() {
    let w = World::new();
    let help = custodia(w.path(), &["ledger", "post-access", "--help"]);
    assert!(help.stdout.contains("test and demo tool"), "{}", help.stdout);
    let url = closed_port_url();
    let grant = "00112233445566778899aabbccddeeff";
    let post = |resource: &str| {
        custodia_with(
            w.path(),
            &[
                "ledger",
                "post-access",
                "--wallet",
                "doctor",
                "--ledger",
                &url,
                "--patient",
                &w.doctor_key,
                "--grant",
                grant,
                "--resource",
                resource,
            ],
            &[],
        )
    };
    assert_fails(&post("Observation"), 2, "Type/id");
    assert_fails(&post("Observation/a b"), 2, "Type/id");
    // Well-formed: it gets as far as unlocking the wallet.
    assert_fails(&post("Observation/hba1c-1"), 2, "no passphrase");
}
