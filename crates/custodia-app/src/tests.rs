use std::path::Path;

use custodia_core::Identity;
use custodia_core::entry::{AccessEvent, AccessedResource, EntryNonce, Outcome, Role};
use custodia_core::purpose::PurposeOfUse;
use custodia_ledger::{LedgerDir, RunningLedger, default_limits};
use custodia_wallet::ledger::NewMember;
use serde_json::json;
use ts_rs::TS;

use super::*;

const PASS: &str = "correct horse battery staple";

fn app(dir: &Path) -> Arc<App> {
    App::with_kdf(dir.join("patient"), None, KdfParams::TESTING)
}

fn call(app: &App, command: &str, args: Value) -> Value {
    app.dispatch(command, args).unwrap_or_else(|e| panic!("{command}: {e:?}"))
}

fn code(app: &App, command: &str, args: Value) -> ErrorCode {
    app.dispatch(command, args).expect_err(command).code
}

fn ts_decl<T: TS>() -> String {
    format!("export {}\n", T::decl())
}

/// The UI's types are generated from the views; this fails when the committed file is stale (run the
/// tests with `CUSTODIA_BLESS=1` to rewrite it).
#[test]
fn typescript_bindings_are_current() {
    let mut text = String::from(
        "// Generated from crates/custodia-app/src/views.rs by its tests (CUSTODIA_BLESS=1). Do not edit.\n\n",
    );
    for decl in [
        ts_decl::<ErrorCode>(),
        ts_decl::<AppError>(),
        ts_decl::<WalletState>(),
        ts_decl::<Status>(),
        ts_decl::<Summary>(),
        ts_decl::<LedgerView>(),
        ts_decl::<Party>(),
        ts_decl::<Code>(),
        ts_decl::<GrantStatus>(),
        ts_decl::<GrantView>(),
        ts_decl::<GrantDetail>(),
        ts_decl::<Resource>(),
        ts_decl::<AccessOutcome>(),
        ts_decl::<AccessRow>(),
        ts_decl::<AccessFilter>(),
        ts_decl::<Histogram>(),
        ts_decl::<AccessPage>(),
        ts_decl::<Proof>(),
        ts_decl::<Export>(),
        ts_decl::<Contact>(),
        ts_decl::<SyncResult>(),
        ts_decl::<News>(),
        ts_decl::<PreviewRecord>(),
        ts_decl::<PreviewView>(),
        ts_decl::<NoticeView>(),
        ts_decl::<NoticeChoice>(),
        ts_decl::<NoticePrefsView>(),
        ts_decl::<Home>(),
        ts_decl::<AttentionKind>(),
        ts_decl::<Attention>(),
        ts_decl::<QrView>(),
        ts_decl::<Decoded>(),
        ts_decl::<AccessRequestView>(),
        ts_decl::<AnswerRequestArgs>(),
        ts_decl::<RequestAnswer>(),
        ts_decl::<EmergencyCardArgs>(),
        ts_decl::<EmergencyCardView>(),
        ts_decl::<Guardian>(),
        ts_decl::<GuardianSet>(),
        ts_decl::<HeldShare>(),
        ts_decl::<RecoveryAlert>(),
        ts_decl::<RetiredView>(),
        ts_decl::<Guardians>(),
        ts_decl::<GuardianCandidate>(),
        ts_decl::<SetGuardiansArgs>(),
        ts_decl::<InboxRequestState>(),
        ts_decl::<InboxRequest>(),
        ts_decl::<BreakGlassRead>(),
        ts_decl::<GuardianInbox>(),
        ts_decl::<StartRecoveryArgs>(),
        ts_decl::<RecoveryPhase>(),
        ts_decl::<RecoveryProgress>(),
        ts_decl::<RecoveryStarted>(),
        ts_decl::<RecoveryFinished>(),
        ts_decl::<RecoveryCancelled>(),
        ts_decl::<NetworkView>(),
    ] {
        text.push_str(&decl);
    }
    let names: Vec<String> = COMMANDS.iter().map(|c| format!("  | '{c}'\n")).collect();
    text.push_str(&format!("\nexport type Command =\n{};\n", names.concat().trim_end()));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/lib/generated/bridge.ts");
    if std::env::var_os("CUSTODIA_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == text, "{} is stale: run `CUSTODIA_BLESS=1 cargo test -p custodia-app`", path.display());
}

#[test]
fn a_wallet_is_created_locked_and_unlocked_only_with_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    assert_eq!(call(&app, "status", json!({}))["state"], "none");
    assert_eq!(code(&app, "home", json!({})), ErrorCode::Locked);
    assert_eq!(code(&app, "create_wallet", json!({"name": "Ada", "passphrase": ""})), ErrorCode::BadInput);
    assert_eq!(code(&app, "create_wallet", json!({"name": " Ada", "passphrase": PASS, "x": 1})), ErrorCode::BadInput);
    let summary = call(&app, "create_wallet", json!({"name": "Ada", "passphrase": PASS}));
    assert_eq!(summary["name"], "Ada");
    assert_eq!(call(&app, "status", json!({}))["state"], "unlocked");
    assert!(call(&app, "contact_qr", json!({}))["svg"].as_str().unwrap().contains("<svg"));

    call(&app, "lock", json!({}));
    assert_eq!(call(&app, "status", json!({}))["state"], "locked");
    assert_eq!(code(&app, "grants", json!({})), ErrorCode::Locked);
    assert_eq!(code(&app, "unlock", json!({"passphrase": "wrong"})), ErrorCode::WrongPassphrase);
    assert_eq!(call(&app, "unlock", json!({"passphrase": PASS}))["key"], summary["key"]);

    // Another app over the same directory cannot open it while this one holds it.
    let other = App::with_kdf(dir.path().join("patient"), None, KdfParams::TESTING);
    assert_eq!(code(&other, "unlock", json!({"passphrase": PASS})), ErrorCode::Busy);
    assert_eq!(code(&app, "no_such_command", json!({})), ErrorCode::UnknownCommand);
    // Every command the list names is one the dispatcher knows.
    for c in COMMANDS {
        assert_ne!(
            app.dispatch(c, json!({"unknown": true})).err().map(|e| e.code),
            Some(ErrorCode::UnknownCommand),
            "{c}"
        );
    }
}

#[test]
fn change_passphrase_needs_the_current_one_and_auto_lock_locks_an_idle_wallet() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    call(&app, "create_wallet", json!({"name": "Ada", "passphrase": PASS}));
    assert_eq!(
        code(&app, "change_passphrase", json!({"current": "nope", "new": "another long one"})),
        ErrorCode::WrongPassphrase
    );
    call(&app, "change_passphrase", json!({"current": PASS, "new": "another long one"}));
    assert_eq!(code(&app, "set_auto_lock", json!({"minutes": 0})), ErrorCode::BadInput);
    assert_eq!(call(&app, "set_auto_lock", json!({"minutes": 1}))["auto_lock_minutes"], 1);
    assert!(!app.lock_if_idle(), "just used");
    app.inner().last_activity -= Duration::from_secs(61);
    assert!(app.lock_if_idle());
    assert_eq!(call(&app, "status", json!({}))["state"], "locked");
    assert_eq!(code(&app, "unlock", json!({"passphrase": PASS})), ErrorCode::WrongPassphrase);
    call(&app, "unlock", json!({"passphrase": "another long one"}));
}

struct Ledger {
    runtime: tokio::runtime::Runtime,
    running: Option<RunningLedger>,
    url: String,
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = self.runtime.block_on(running.shutdown());
        }
    }
}

fn ledger(dir: &Path, authority: &Identity) -> Ledger {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (ledger_dir, _) = LedgerDir::init(&dir.join("ledger"), authority.signing_public(), None).unwrap();
    let store = custodia_ledger::open_store(&ledger_dir, None).unwrap();
    let addr = "127.0.0.1:0".parse().unwrap();
    let running = runtime.block_on(custodia_ledger::start(&ledger_dir, store, addr, default_limits())).unwrap();
    let url = format!("http://{}", running.addr);
    Ledger { runtime, running: Some(running), url }
}

fn wallet(dir: &Path, name: &str) -> Wallet {
    Wallet::create(&dir.join(name), name, Passphrase::new(PASS.into()).unwrap(), KdfParams::TESTING, now().unwrap())
        .unwrap()
}

fn access_event(
    gateway: &Wallet,
    patient: &str,
    reader: &Wallet,
    grant: Option<&str>,
    outcome: Outcome,
    break_glass: bool,
) -> AccessEvent {
    AccessEvent {
        id: EntryNonce::generate(),
        gateway: gateway.signing_key(),
        patient: patient.parse().unwrap(),
        reader: reader.signing_key(),
        reader_name: "Dr Hopper".into(),
        organisation: "St Mary's".into(),
        grant_id: grant.map(|g| g.parse().unwrap()),
        purpose: PurposeOfUse::TREATMENT,
        at: now().unwrap(),
        outcome,
        break_glass,
        request: "GET Observation?patient=p1&category=laboratory".into(),
        resources: if outcome == Outcome::Allowed {
            vec![AccessedResource {
                resource_type: "Observation".into(),
                id: "hba1c-1".into(),
                labels: vec![],
                category: Some("laboratory".into()),
            }]
        } else {
            vec![]
        },
        reason: (outcome == Outcome::Denied).then(|| "the grant does not cover mental-health notes".into()),
        emergency_reason: None,
    }
}

#[test]
fn a_patient_grants_sees_reads_verified_and_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let mut authority = wallet(dir.path(), "authority");
    let ledger = ledger(dir.path(), authority.identity());
    let doctor = wallet(dir.path(), "Dr Hopper");
    let mut gateway = wallet(dir.path(), "gateway");
    for (who, role) in [(&doctor, Role::Provider), (&gateway, Role::Gateway)] {
        let member = NewMember {
            key: who.signing_key(),
            box_key: who.identity().box_public(),
            role,
            name: who.name().into(),
            org: "St Mary's".into(),
        };
        authority.enroll_member(&ledger.url, None, member, now().unwrap()).unwrap();
    }

    let app = App::with_kdf(dir.path().join("patient"), Some(ledger.url.clone()), KdfParams::TESTING);
    assert_eq!(call(&app, "status", json!({}))["default_ledger"], ledger.url);
    let me =
        call(&app, "create_wallet", json!({"name": "Ada", "passphrase": PASS}))["key"].as_str().unwrap().to_owned();
    let card = QrPayload::Contact(doctor.contact_card()).encode();
    assert_eq!(code(&app, "resolve_contact", json!({"text": card})), ErrorCode::NotEnrolled);
    let home = call(&app, "home", json!({}));
    assert_eq!(home["attention"][0]["kind"], "not_enrolled");
    call(&app, "enroll", json!({"ledger_url": ledger.url}));

    // The clinician, from their contact card, verified on the ledger.
    let contact = call(&app, "resolve_contact", json!({"text": card}));
    assert_eq!((contact["name"].as_str(), contact["verified"].as_bool()), (Some("Dr Hopper"), Some(true)));
    assert_eq!(code(&app, "resolve_contact", json!({"text": gateway.signing_key().to_string()})), ErrorCode::BadInput);
    assert_eq!(code(&app, "resolve_contact", json!({"text": "hello"})), ErrorCode::BadInput);
    assert_eq!(call(&app, "contacts", json!({}))[0]["name"], "Dr Hopper");

    let grant_args = |scopes: Value| json!({"grantee": contact["key"], "scopes": scopes, "labels": [], "purpose": "TREAT", "duration_seconds": 86_400 * 7});
    assert_eq!(code(&app, "create_grant", grant_args(json!([]))), ErrorCode::BadInput);
    assert_eq!(code(&app, "create_grant", grant_args(json!(["patient/Observation.rs?foo=bar"]))), ErrorCode::BadInput);
    let grant = call(&app, "create_grant", grant_args(json!(["patient/Observation.rs?category=laboratory"])));
    let id = grant["id"].as_str().unwrap().to_owned();
    assert_eq!(grant["status"], "active");
    assert!(grant["grant_index"].is_number(), "posted: {grant}");
    assert_eq!(call(&app, "home", json!({}))["active_grants"][0]["id"], id);

    // A gateway logs a read and a refused attempt; a sync brings both, verified.
    for (outcome, glass) in [(Outcome::Allowed, false), (Outcome::Denied, false), (Outcome::Allowed, true)] {
        let event = access_event(&gateway, &me, &doctor, Some(&id), outcome, glass);
        gateway.post_access_event(&ledger.url, None, event, now().unwrap()).unwrap();
    }
    let synced = call(&app, "sync", json!({}));
    let new_events = synced["new_events"].as_array().unwrap();
    assert_eq!(new_events.len(), 3);
    assert!(new_events.iter().all(|e| e["verified"] == true && e["reader"]["name"] == "Dr Hopper"));
    // Each is classified and delivered as the (default) preferences say, in plain words.
    let told: Vec<(&str, &str)> = synced["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["kind"].as_str().unwrap(), n["delivery"].as_str().unwrap()))
        .collect();
    assert_eq!(told, [("new-reader", "instant"), ("refused", "instant"), ("break-glass", "instant")]);
    assert_eq!(synced["notices"][0]["text"], "Dr Hopper at St Mary's read your lab results (1 record).");
    assert!(call(&app, "sync", json!({}))["new_events"].as_array().unwrap().is_empty());

    let page = call(&app, "access_log", json!({"filter": {}, "offset": 0, "limit": 2}));
    assert_eq!((page["total"].as_u64(), page["rows"].as_array().unwrap().len()), (Some(3), 2));
    assert_eq!(page["categories"], json!(["laboratory"]));
    let denied = call(&app, "access_log", json!({"filter": {"outcome": "denied"}, "offset": 0, "limit": 100}));
    assert_eq!(denied["total"], 1);
    assert_eq!(denied["rows"][0]["reason"], "the grant does not cover mental-health notes");
    let glass = call(&app, "access_log", json!({"filter": {"break_glass": true}, "limit": 100}));
    assert_eq!(glass["total"], 1);
    assert_eq!(code(&app, "access_log", json!({"filter": {}, "limit": 0})), ErrorCode::BadInput);
    let kinds: Vec<Value> =
        call(&app, "home", json!({}))["attention"].as_array().unwrap().iter().map(|a| a["kind"].clone()).collect();
    assert!(kinds.contains(&json!("break_glass")) && kinds.contains(&json!("denied")), "{kinds:?}");

    // Any entry's inclusion can be shown again, checked against the wallet's checkpoint.
    let index = page["rows"][0]["index"].as_u64().unwrap();
    let proof = call(&app, "access_proof", json!({"index": index}));
    assert_eq!(proof["verified"], true);
    assert!(proof["checkpoint"].as_str().unwrap().contains(&format!("\n{}\n", proof["checkpoint_size"])));
    assert_eq!(code(&app, "access_proof", json!({"index": 0})), ErrorCode::NotFound);

    let csv = call(&app, "export_access_csv", json!({"filter": {}}));
    assert_eq!(csv["text"].as_str().unwrap().lines().count(), 4, "a header and three events");
    let bundle: Value =
        serde_json::from_str(call(&app, "export_audit_bundle", json!({"filter": {}}))["text"].as_str().unwrap())
            .unwrap();
    assert_eq!(bundle["entry"].as_array().unwrap().len(), 3);
    assert_eq!(bundle["entry"][0]["resource"]["resourceType"], "AuditEvent");
    let consent: Value =
        serde_json::from_str(call(&app, "export_consent", json!({"id": id}))["text"].as_str().unwrap()).unwrap();
    assert_eq!(consent["resourceType"], "Consent");

    let detail = call(&app, "grant", json!({"id": id}));
    assert_eq!((detail["grant"]["reads"].as_u64(), detail["grant"]["denied"].as_u64()), (Some(2), Some(1)));
    assert_eq!(detail["reads"].as_array().unwrap().len(), 3);

    let revoked = call(&app, "revoke_grant", json!({"id": id}));
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revocation_index"].is_number());
    assert_eq!(code(&app, "revoke_grant", json!({"id": id})), ErrorCode::Conflict);
    assert_eq!(code(&app, "grant", json!({"id": "not-an-id"})), ErrorCode::BadInput);

    // Everything survives a lock and an unlock.
    call(&app, "lock", json!({}));
    call(&app, "unlock", json!({"passphrase": PASS}));
    assert_eq!(call(&app, "access_log", json!({"filter": {}, "limit": 10}))["total"], 3);
    assert_eq!(call(&app, "grants", json!({}))[0]["status"], "revoked");

    // News: a wait that holds nothing (other commands answer meanwhile) ends when the ledger announces a
    // new entry; the sync after it reads that entry.
    let synced_size = call(&app, "sync", json!({}))["checkpoint_size"].as_u64().unwrap();
    let known = synced_size - 1;
    let waiter = {
        let app = app.clone();
        std::thread::spawn(move || call(&app, "wait_news", json!({"after": known, "wait_ms": 20_000})))
    };
    assert_eq!(call(&app, "status", json!({}))["state"], "unlocked");
    std::thread::sleep(Duration::from_millis(300));
    // The patient chooses not to be interrupted by refusals; the next one is in the log only.
    assert_eq!(call(&app, "notice_prefs", json!({}))["choices"][2]["delivery"], "instant");
    let prefs = call(&app, "set_notice_prefs", json!({"kind": "refused", "delivery": "never"}));
    assert_eq!(
        (prefs["choices"][2]["kind"].as_str(), prefs["choices"][2]["delivery"].as_str()),
        (Some("refused"), Some("never"))
    );
    assert_eq!(code(&app, "set_notice_prefs", json!({"kind": "recovery", "delivery": "never"})), ErrorCode::BadInput);
    assert_eq!(code(&app, "set_notice_prefs", json!({"kind": "routine", "delivery": "loudly"})), ErrorCode::BadInput);
    let event = access_event(&gateway, &me, &doctor, Some(&id), Outcome::Denied, false);
    gateway.post_access_event(&ledger.url, None, event, now().unwrap()).unwrap();
    let news = waiter.join().unwrap();
    assert!(news["latest"].as_u64().unwrap() > known, "{news}");
    assert_eq!(news["live"], true);
    let deadline = Instant::now() + Duration::from_secs(10);
    let synced = loop {
        let synced = call(&app, "sync", json!({}));
        if !synced["new_events"].as_array().unwrap().is_empty() {
            break synced;
        }
        assert!(Instant::now() < deadline, "the announced entry was never read");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (synced["notices"][0]["kind"].as_str(), synced["notices"][0]["delivery"].as_str()),
        (Some("refused"), Some("never"))
    );
    assert!(
        synced["notices"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with("and was refused: their permission does not cover those records."),
        "{synced}"
    );
    assert_eq!(code(&app, "wait_news", json!({"wait_ms": 60_000})), ErrorCode::BadInput);
    call(&app, "lock", json!({}));
    assert_eq!(code(&app, "wait_news", json!({"wait_ms": 10})), ErrorCode::Locked);

    drop(ledger);
    call(&app, "unlock", json!({"passphrase": PASS}));
    assert_eq!(code(&app, "sync", json!({})), ErrorCode::LedgerUnreachable);
}

#[test]
fn spreadsheet_cells_are_quoted_and_never_run_as_formulas() {
    assert_eq!(log::csv_cell("plain"), "plain");
    assert_eq!(log::csv_cell("a,b"), "\"a,b\"");
    assert_eq!(log::csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(log::csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    assert_eq!(log::csv_cell("-1"), "'-1");
}

#[test]
fn a_scanned_request_is_shown_verified_and_answered_narrower_or_declined() {
    let dir = tempfile::tempdir().unwrap();
    let mut authority = wallet(dir.path(), "authority");
    let ledger = ledger(dir.path(), authority.identity());
    let mut er = wallet(dir.path(), "Dr Lee");
    let stranger = wallet(dir.path(), "stranger");
    let member = NewMember {
        key: er.signing_key(),
        box_key: er.identity().box_public(),
        role: Role::Emergency,
        name: "Dr Rosa Lee".into(),
        org: "St Mary's ED".into(),
    };
    authority.enroll_member(&ledger.url, None, member, now().unwrap()).unwrap();
    let app = App::with_kdf(dir.path().join("patient"), Some(ledger.url.clone()), KdfParams::TESTING);
    call(&app, "create_wallet", json!({"name": "Ada", "passphrase": PASS}));
    call(&app, "enroll", json!({"ledger_url": ledger.url}));

    let scopes: Vec<Scope> =
        ["patient/AllergyIntolerance.rs", "patient/Condition.rs"].iter().map(|s| s.parse().unwrap()).collect();
    let ask = |w: &mut Wallet| {
        let signed = w
            .create_access_request(&ledger.url, scopes.clone(), PurposeOfUse::EMERGENCY_TREATMENT, 3600, now().unwrap())
            .unwrap();
        QrPayload::AccessRequest(signed).encode()
    };
    let text = ask(&mut er);
    let shown = call(&app, "open_request", json!({"text": text}));
    assert_eq!(shown["requester"]["name"], "Dr Rosa Lee");
    assert_eq!(
        (shown["requester"]["role"].as_str(), shown["requester"]["verified"].as_bool()),
        (Some("emergency"), Some(true))
    );
    assert_eq!(shown["purpose"]["code"], "ETREAT");
    let id = shown["id"].as_str().unwrap().to_owned();

    // Widening is refused; narrowing is granted, posted and delivered.
    let widen = json!({"id": id, "approve": true, "scopes": ["patient/Observation.rs"]});
    assert_eq!(code(&app, "answer_request", widen), ErrorCode::BadInput);
    let longer = json!({"id": id, "approve": true, "duration_seconds": 7200});
    assert_eq!(code(&app, "answer_request", longer), ErrorCode::BadInput);
    let answer = call(&app, "answer_request", json!({"id": id, "approve": true, "scopes": ["patient/Condition.rs"]}));
    assert_eq!(answer["approved"], true);
    assert_eq!(answer["grant"]["scopes"], json!(["patient/Condition.rs"]));
    assert!(answer["grant"]["grant_index"].is_number());
    assert_eq!(code(&app, "answer_request", json!({"id": id, "approve": false})), ErrorCode::NotFound);
    let got = er.collect_answers(now().unwrap()).unwrap();
    let [custodia_wallet::wallet::AnswerReceived::Approved { grant, .. }] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!(grant.id.to_string(), answer["grant"]["id"].as_str().unwrap());

    // A decline reaches the requester too.
    let text = ask(&mut er);
    let id = call(&app, "open_request", json!({"text": text}))["id"].as_str().unwrap().to_owned();
    assert_eq!(call(&app, "answer_request", json!({"id": id, "approve": false}))["grant"], Value::Null);
    let got = er.collect_answers(now().unwrap()).unwrap();
    assert!(matches!(got.as_slice(), [custodia_wallet::wallet::AnswerReceived::Declined { .. }]), "{got:?}");

    // A request from someone the network never enrolled is not shown as if it were real.
    let forged = {
        let request = custodia_core::access_request::AccessRequest::new(
            stranger.identity(),
            scopes.clone(),
            PurposeOfUse::EMERGENCY_TREATMENT,
            3600,
            ledger.url.clone(),
            now().unwrap(),
        );
        QrPayload::AccessRequest(request.sign(stranger.identity()).unwrap()).encode()
    };
    assert_eq!(code(&app, "open_request", json!({"text": forged})), ErrorCode::VerificationFailed);
    assert_eq!(code(&app, "open_request", json!({"text": "CU1:R:AAAA"})), ErrorCode::BadInput);
    let contact = QrPayload::Contact(stranger.contact_card()).encode();
    assert_eq!(code(&app, "open_request", json!({"text": contact})), ErrorCode::BadInput);
}

#[test]
fn an_emergency_card_is_made_posted_and_printed_in_three_formats() {
    let dir = tempfile::tempdir().unwrap();
    let authority = wallet(dir.path(), "authority");
    let ledger = ledger(dir.path(), authority.identity());
    let app = App::with_kdf(dir.path().join("patient"), Some(ledger.url.clone()), KdfParams::TESTING);
    call(&app, "create_wallet", json!({"name": "Ada", "passphrase": PASS}));
    let args = |scopes: Value| json!({"scopes": scopes, "duration_seconds": 365 * 86_400});
    assert_eq!(
        code(&app, "create_emergency_card", args(json!(["patient/AllergyIntolerance.rs"]))),
        ErrorCode::NotEnrolled
    );
    call(&app, "enroll", json!({"ledger_url": ledger.url}));
    assert_eq!(code(&app, "create_emergency_card", args(json!([]))), ErrorCode::BadInput);
    let too_long = json!({"scopes": ["patient/Condition.rs"], "duration_seconds": 400 * 86_400});
    assert_eq!(code(&app, "create_emergency_card", too_long), ErrorCode::BadInput);
    let scopes: Vec<&str> = custodia_core::printable::CARD_SCOPES.to_vec();
    let card = call(&app, "create_emergency_card", args(json!(scopes)));
    assert_eq!(card["grant"]["emergency_card"], true);
    assert_eq!(card["grant"]["purpose"]["code"], "ETREAT");
    assert!(card["grant"]["grant_index"].is_number(), "posted: {}", card["grant"]);
    assert!(card["svg"].as_str().unwrap().contains("Ada"));
    let png = data_encoding::BASE64.decode(card["png_base64"].as_str().unwrap().as_bytes()).unwrap();
    assert!(qr::decode_image(&png).unwrap().starts_with("CU1:E:"));
    let pdf = data_encoding::BASE64.decode(card["pdf_base64"].as_str().unwrap().as_bytes()).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    // It is a grant like any other: listed, and revoked when the card is lost.
    let id = card["grant"]["id"].as_str().unwrap();
    assert_eq!(call(&app, "revoke_grant", json!({"id": id}))["status"], "revoked");

    // With the ledger gone the card cannot be posted; no unusable grant is left behind.
    let held = call(&app, "grants", json!({})).as_array().unwrap().len();
    drop(ledger);
    assert_eq!(code(&app, "create_emergency_card", args(json!(scopes))), ErrorCode::LedgerUnreachable);
    assert_eq!(call(&app, "grants", json!({})).as_array().unwrap().len(), held);
}

fn patient_app(dir: &Path, folder: &str, name: &str, ledger: &Ledger) -> Arc<App> {
    let app = App::with_kdf(dir.join(folder), Some(ledger.url.clone()), KdfParams::TESTING);
    call(&app, "create_wallet", json!({"name": name, "passphrase": PASS}));
    call(&app, "enroll", json!({"ledger_url": ledger.url}));
    app
}

fn device(dir: &Path, folder: &str) -> Arc<App> {
    App::with_kdf(dir.join(folder), None, KdfParams::TESTING)
}

fn state_of<'a>(inbox: &'a Value, id: &str) -> Option<&'a str> {
    inbox["requests"].as_array().unwrap().iter().find(|r| r["request_id"] == id).and_then(|r| r["state"].as_str())
}

#[test]
fn a_patient_chooses_guardians_cancels_a_stranger_and_recovers_on_a_new_device() {
    let dir = tempfile::tempdir().unwrap();
    let authority = wallet(dir.path(), "authority");
    let ledger = ledger(dir.path(), authority.identity());
    let patient = patient_app(dir.path(), "patient", "Ada", &ledger);
    let old_key = call(&patient, "status", json!({}))["summary"]["key"].as_str().unwrap().to_owned();
    // Ann's wallet is an app too (a guardian's side through the bridge); Ben and Cy are wallets.
    let ann = patient_app(dir.path(), "ann", "Ann", &ledger);
    let ann_card = call(&ann, "contact_qr", json!({}))["text"].as_str().unwrap().to_owned();
    let mut ben = wallet(dir.path(), "Ben");
    let mut cy = wallet(dir.path(), "Cy");
    for w in [&mut ben, &mut cy] {
        w.enroll(&ledger.url, None, now().unwrap()).unwrap();
    }
    let (ben_key, cy_card) = (ben.signing_key().to_string(), QrPayload::Contact(cy.contact_card()).encode());

    // Nobody yet; candidates are named by their card, or by key through the ledger.
    let none = call(&patient, "guardians", json!({}));
    assert_eq!((none["set"].clone(), none["default_waiting_seconds"].as_u64()), (Value::Null, Some(86_400)));
    assert_eq!(none["default_thresholds"], json!([2, 2, 3, 3, 4, 4, 5, 5, 6]), "a majority of 2 to 10");
    let candidate = call(&patient, "guardian_contact", json!({"text": ann_card}));
    assert_eq!((candidate["name"].as_str(), candidate["from_card"].as_bool()), (Some("Ann"), Some(true)));
    assert!(candidate["fingerprint"].as_str().is_some_and(|f| !f.is_empty()));
    let by_key = call(&patient, "guardian_contact", json!({"text": ben_key}));
    assert_eq!((by_key["key"].as_str(), by_key["from_card"].as_bool()), (Some(ben_key.as_str()), Some(false)));
    let own = call(&patient, "contact_qr", json!({}))["text"].clone();
    assert_eq!(code(&patient, "guardian_contact", json!({"text": own})), ErrorCode::BadInput);
    assert_eq!(code(&patient, "guardian_contact", json!({"text": "hello"})), ErrorCode::BadInput);
    let stranger = wallet(dir.path(), "stranger").signing_key().to_string();
    assert_eq!(code(&patient, "guardian_contact", json!({"text": stranger})), ErrorCode::NotFound);

    // Two of three, a one-second waiting period (the default is a day).
    let contacts = json!([ann_card, ben_key, cy_card]);
    assert_eq!(code(&patient, "set_guardians", json!({"contacts": [ann_card]})), ErrorCode::BadInput);
    assert_eq!(code(&patient, "set_guardians", json!({"contacts": contacts, "threshold": 1})), ErrorCode::BadInput);
    assert_eq!(code(&patient, "check_guardians", json!({})), ErrorCode::NotFound, "no guardians yet");
    let set = call(&patient, "set_guardians", json!({"contacts": contacts, "waiting_seconds": 1}));
    assert_eq!((set["set"]["threshold"].as_u64(), set["set"]["count"].as_u64()), (Some(2), Some(3)));
    assert_eq!(set["set"]["guardians"][0]["name"], "Ann");
    assert!(set["set"]["guardians"][0]["accepted_at"].is_null());

    // The guardians accept; the patient collects their acknowledgements and asks for proofs.
    let inbox = call(&ann, "guardian_inbox", json!({}));
    assert_eq!(inbox["accepted"], 1);
    assert_eq!(
        (inbox["shares"][0]["patient_name"].as_str(), inbox["shares"][0]["superseded"].as_bool()),
        (Some("Ada"), Some(false))
    );
    assert_eq!(call(&ann, "guardians", json!({}))["held"][0]["patient"], old_key.as_str());
    for w in [&mut ben, &mut cy] {
        assert_eq!(w.guardian_inbox(None, now().unwrap()).unwrap().accepted, 1);
    }
    let checked = call(&patient, "check_guardians", json!({}));
    assert!(checked["set"]["guardians"].as_array().unwrap().iter().all(|g| g["accepted_at"].is_number()), "{checked}");
    assert!(checked["set"]["challenged_at"].is_number());

    // A stranger starts a recovery: the patient's sync finds it, Home warns, and the patient cancels it.
    let rogue = device(dir.path(), "rogue");
    let start = |app: &App, patient_key: &str| {
        app.dispatch(
            "start_recovery",
            json!({"ledger_url": ledger.url, "patient_key": patient_key, "passphrase": PASS}),
        )
    };
    let rogue_started = start(&rogue, &old_key).unwrap();
    let rogue_id = rogue_started["progress"]["request_id"].as_str().unwrap().to_owned();
    let synced = call(&patient, "sync", json!({}));
    assert_eq!(synced["new_recovery_alerts"][0]["request_id"], rogue_id.as_str(), "{synced}");
    let kinds: Vec<Value> =
        call(&patient, "home", json!({}))["attention"].as_array().unwrap().iter().map(|a| a["kind"].clone()).collect();
    assert!(kinds.contains(&json!("recovery_request")), "{kinds:?}");
    assert!(call(&patient, "guardians", json!({}))["alerts"][0]["cancelled_at"].is_null());
    assert_eq!(code(&patient, "cancel_recovery", json!({"request_id": "nope"})), ErrorCode::BadInput);
    let vetoed = call(&patient, "cancel_recovery", json!({}));
    assert_eq!(vetoed["cancelled"], json!([rogue_id]));
    assert!(call(&patient, "guardians", json!({}))["alerts"][0]["cancelled_at"].is_number());
    let kinds = call(&patient, "home", json!({}))["attention"].to_string();
    assert!(!kinds.contains("recovery_request"), "{kinds}");
    assert_eq!(call(&rogue, "recovery_status", json!({}))["phase"], "cancelled");
    assert_eq!(code(&rogue, "finish_recovery", json!({})), ErrorCode::Conflict);
    // Giving up removes the device's wallet: the app is back to a first run.
    call(&rogue, "abandon_recovery", json!({}));
    assert_eq!(call(&rogue, "status", json!({}))["state"], "none");
    assert_eq!(code(&patient, "abandon_recovery", json!({})), ErrorCode::Conflict, "not a recovering wallet");

    // Mistakes leave nothing behind: a bad key, someone not enrolled, a patient without guardians.
    let phone = device(dir.path(), "new-phone");
    assert_eq!(start(&phone, "cusig1nope").unwrap_err().code, ErrorCode::BadInput);
    assert_eq!(start(&phone, &stranger).unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(start(&phone, &ben_key).unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(call(&phone, "status", json!({}))["state"], "none");

    // The phone is lost. On the new one: the code, and a wallet that says it is recovering.
    let started = start(&phone, &old_key).unwrap();
    assert_eq!(started["summary"]["recovering"], true);
    let progress = &started["progress"];
    let (id, the_code) =
        (progress["request_id"].as_str().unwrap().to_owned(), progress["code"].as_str().unwrap().to_owned());
    assert_eq!(the_code.len(), 7, "six digits in two groups");
    assert_eq!((progress["phase"].as_str(), progress["threshold"].as_u64()), (Some("waiting"), Some(2)));
    assert_eq!(code(&phone, "create_wallet", json!({"name": "x", "passphrase": PASS})), ErrorCode::WalletExists);
    call(&phone, "lock", json!({}));
    assert_eq!(
        call(&phone, "unlock", json!({"passphrase": PASS}))["recovering"],
        true,
        "still recovering after a lock"
    );
    assert_eq!(call(&phone, "status", json!({}))["summary"]["recovering"], true);

    // Ann approves through the app: a wrong code first, plainly refused.
    let inbox = call(&ann, "guardian_inbox", json!({}));
    assert_eq!(state_of(&inbox, &id), Some("awaiting_code"), "{inbox}");
    let wrong = if the_code.starts_with('1') { "222 222" } else { "111 111" };
    let refused = ann.dispatch("approve_recovery", json!({"request_id": id, "code": wrong})).unwrap_err();
    assert_eq!(refused.code, ErrorCode::BadInput);
    assert!(refused.message.contains("tries left"), "{}", refused.message);
    assert_eq!(code(&ann, "approve_recovery", json!({"request_id": id, "code": " "})), ErrorCode::BadInput);
    let approved = call(&ann, "approve_recovery", json!({"request_id": id, "code": the_code}));
    assert!(matches!(approved["state"].as_str(), Some("approved" | "released")), "{approved}");
    let ben_inbox = ben.guardian_inbox(None, now().unwrap()).unwrap();
    let asked = ben_inbox.requests.iter().find(|r| r.request_id.to_string() == id).expect("Ben is asked too");
    ben.approve_recovery(asked.request_id, &the_code, now().unwrap()).unwrap();
    let status = call(&phone, "recovery_status", json!({}));
    assert_eq!(status["approved"].as_array().unwrap().len(), 2, "{status}");

    // After the waiting period the guardians' inboxes release the shares; the new device finishes.
    std::thread::sleep(Duration::from_millis(2100));
    let released = call(&ann, "guardian_inbox", json!({}));
    assert!(state_of(&released, &id) == Some("released"), "{released}");
    ben.guardian_inbox(None, now().unwrap()).unwrap();
    assert_eq!(call(&phone, "recovery_status", json!({}))["phase"], "ready");
    let finished = call(&phone, "finish_recovery", json!({}));
    assert_eq!(finished["summary"]["name"], "Ada");
    assert_eq!(finished["summary"]["recovering"], false);
    assert_eq!(finished["patient"], old_key.as_str());
    assert_ne!(finished["summary"]["key"], old_key.as_str(), "recovery ends with a key rotation");
    assert_eq!(finished["guardians"], 3);
    assert_eq!(call(&phone, "status", json!({}))["summary"]["recovering"], false);
    assert_eq!(call(&phone, "guardians", json!({}))["set"]["count"], 3);
    assert_eq!(code(&phone, "recovery_status", json!({})), ErrorCode::Conflict);

    // The lost phone's copy can no longer act: its sync learns from the ledger that its key was retired, and
    // says so, on Home and under Guardians.
    let refused = patient.dispatch("sync", json!({})).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict, "{refused:?}");
    assert!(refused.message.contains("recovered on another device"), "{refused:?}");
    assert!(call(&patient, "guardians", json!({}))["retired"]["successor"].is_string());
    assert!(call(&patient, "home", json!({}))["attention"].to_string().contains("retired"));
    // The new one can drop a guardian.
    let cy_key = cy.signing_key().to_string();
    let fewer = call(&phone, "remove_guardian", json!({"key": cy_key}));
    assert_eq!(fewer["set"]["count"], 2);
    assert_eq!(code(&phone, "remove_guardian", json!({"key": cy_key})), ErrorCode::NotFound);
}

/// Joining with a network profile: read from its text or its QR picture, shown with its fingerprint, then
/// joined; the wallet then holds checkpoints only with the witness's cosignature.
#[test]
fn a_patient_joins_a_network_with_its_profile() {
    let dir = tempfile::tempdir().unwrap();
    let authority = wallet(dir.path(), "authority");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let witness = std::sync::Arc::new(
        custodia_witness::WitnessDir::init(&dir.path().join("witness"), Some("w1.example")).unwrap(),
    );
    let (ledger_dir, log_key) =
        LedgerDir::init(&dir.path().join("ledger"), authority.identity().signing_public(), None).unwrap();
    witness.add_log(log_key.name(), &log_key).unwrap();
    let serving = runtime.block_on(custodia_witness::start(witness.clone(), "127.0.0.1:0".parse().unwrap(), None));
    let serving = serving.unwrap();
    let policy = format!("log {}\nwitness W1 {} {}\nquorum W1\n", log_key.to_vkey(), witness.verifier(), serving.url);
    let policy = custodia_log::policy::Policy::parse(&policy).unwrap();
    let store = custodia_ledger::open_store(&ledger_dir, None).unwrap();
    let options = custodia_ledger::ServeOptions { tls: None, witness_policy: Some(policy.clone()) };
    let addr = "127.0.0.1:0".parse().unwrap();
    let running =
        runtime.block_on(custodia_ledger::start_with(&ledger_dir, store, addr, default_limits(), options)).unwrap();
    let profile =
        custodia_wallet::network::NetworkProfile::build(&running.url, authority.identity().signing_public(), &policy)
            .unwrap();

    let app = app(dir.path());
    call(&app, "create_wallet", json!({"name": "Ada", "passphrase": PASS}));
    let shown = call(&app, "network_profile", json!({"profile": profile.text()}));
    assert_eq!(shown["fingerprint"], profile.fingerprint().to_string());
    assert_eq!(shown["witnesses"], json!(["W1"]));
    assert_eq!(shown["quorum"], "W1 must vouch for every checkpoint");
    assert_eq!(code(&app, "network_profile", json!({"profile": "https://ledger.example.org"})), ErrorCode::BadInput);
    // The same profile from a picture of its QR code.
    let png = custodia_core::qr::render_document_png(profile.text()).unwrap();
    let read = call(&app, "scan_image", json!({"image_base64": data_encoding::BASE64.encode(&png)}));
    assert_eq!(read["text"], profile.text());

    let summary = call(&app, "join_network", json!({"profile": profile.text()}));
    assert_eq!(summary["ledger"]["network"], profile.fingerprint().to_string());
    assert_eq!(summary["ledger"]["witnesses"], json!(["W1"]));
    call(&app, "sync", json!({}));
    drop(app);
    runtime.block_on(running.shutdown()).unwrap();
    runtime.block_on(serving.shutdown()).unwrap();
}
