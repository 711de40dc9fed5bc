//! An emergency card is opened for a stated reason: each read under it names one of the listed reasons,
//! and the patient's log shows it under the read. And it is open to a reader for 12 hours from their
//! first read under it, a window that survives a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

#[path = "../benches/support/network.rs"]
mod setup;

use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_core::entry::{EntryNonce, statement_digest};
use custodia_core::reqsig;
use custodia_gateway::dataset::Dataset;
use custodia_gateway::records::Records;
use custodia_wallet::fhir_client::GatewayClient;
use setup::{Network, now};

#[test]
fn a_card_read_names_its_reason_and_the_patient_sees_it() {
    let mut net = Network::start();
    let gateway = net.start_gateway(Records::Local(Arc::new(Dataset::synthetic())), "card");
    let scopes = vec!["patient/AllergyIntolerance.rs".parse().unwrap()];
    let (card, grant, _) = net.patient.create_emergency_card(scopes, Vec::new(), 86_400 * 365, now()).unwrap();
    let (er, card_key) = (net.er.service_identity(), card.identity());
    let client = GatewayClient::new(&gateway.url).unwrap();

    let read = client.get("/fhir/AllergyIntolerance", &grant, &er, Some((&card_key, "unconscious")), None, now());
    assert_eq!(read.unwrap().status, 200);

    // The same request signed by both keys, with no reason or an unlisted one: refused.
    let url = format!("{}/fhir/AllergyIntolerance", gateway.url);
    let binding = statement_digest(grant.envelope());
    let send = |reason: Option<&str>| {
        let (at, nonce) = (now(), EntryNonce::generate());
        let mut request = reqwest::blocking::Client::new()
            .get(&url)
            .header("custodia-grant", data_encoding::BASE64URL_NOPAD.encode(grant.to_compact_json().as_bytes()))
            .header(reqsig::HEADER, reqsig::sign_bound(&er, "GET", &url, &binding, at, &nonce))
            .header("custodia-card-signature", reqsig::sign_bound(&card_key, "GET", &url, &binding, at, &nonce));
        if let Some(r) = reason {
            request = request.header("custodia-emergency-reason", r);
        }
        let response = request.send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    let (status, body) = send(None);
    assert_eq!(status, 403);
    assert!(body.contains("unconscious, life-threatening, cannot-consent, other-urgent"), "{body}");
    assert_eq!(send(Some("bored")).0, 403);
    assert_eq!(send(Some("life-threatening")).0, 200);

    // In the patient's verified log, each card read with its reason.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        net.patient.sync(now()).unwrap();
        let reasons: Vec<Option<String>> = net
            .patient
            .access_events()
            .iter()
            .map(|a| a.event.statement())
            .filter(|e| e.break_glass && e.outcome == custodia_core::entry::Outcome::Allowed)
            .map(|e| e.emergency_reason.clone())
            .collect();
        if reasons.len() >= 2 {
            assert_eq!(reasons, [Some("unconscious".to_owned()), Some("life-threatening".to_owned())]);
            break;
        }
        assert!(Instant::now() < deadline, "the card reads reach the patient's log");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The reader's window opened at their first read, durably. Twelve hours and a restart later (the
    // clock moved by rewriting when it opened), the card no longer opens for them.
    net.rt.block_on(gateway.shutdown()).unwrap();
    let outbox = rusqlite::Connection::open(net.dir.path().join("card-outbox.sqlite")).unwrap();
    let opened: i64 = outbox
        .query_row(
            "SELECT opened FROM windows WHERE grant_id = ?1 AND reader = ?2",
            rusqlite::params![grant.id.as_bytes().as_slice(), er.signing_public().as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert!((now().unix() - opened).abs() < 60, "opened at the first read");
    outbox.execute("UPDATE windows SET opened = opened - 12 * 3600 - 1", []).unwrap();
    drop(outbox);
    let gateway = net.start_gateway_with_outbox(Records::Local(Arc::new(Dataset::synthetic())), "card");
    let client = GatewayClient::new(&gateway.url).unwrap();
    let late = client.get("/fhir/AllergyIntolerance", &grant, &er, Some((&card_key, "unconscious")), None, now());
    let late = late.unwrap();
    assert_eq!(late.status, 403);
    assert!(late.refusal().unwrap().contains("window for you closed 12 hours"), "{:?}", late.refusal());
}
