//! A patient reading their own records: every record of theirs, signed by their own key, with no grant;
//! logged in their log. Anyone else signing such a request is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

#[path = "../benches/support/network.rs"]
mod setup;

use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_core::entry::{EntryNonce, Outcome};
use custodia_core::reqsig;
use custodia_gateway::dataset::Dataset;
use custodia_gateway::records::Records;
use custodia_wallet::fhir_client::GatewayClient;
use setup::{Network, now};

#[test]
fn the_patient_reads_everything_of_theirs_and_no_one_else_may_ask_so() {
    let mut net = Network::start();
    let gateway = net.start_gateway(Records::Local(Arc::new(Dataset::synthetic())), "own");
    let client = GatewayClient::new(&gateway.url).unwrap();
    let patient = net.patient.service_identity();

    // All of their lab results, the HIV-labelled one too: no grant narrows what is theirs.
    let labs = client.get_own("/fhir/Observation?category=laboratory", &patient, now()).unwrap();
    assert_eq!(labs.status, 200, "{}", labs.body);
    let ids: Vec<&str> =
        labs.body["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"p1-hiv-result"), "{ids:?}");
    let one = client.get_own("/fhir/Observation/p1-hiv-result", &patient, now()).unwrap();
    assert_eq!(one.status, 200);
    // Another patient's record is not theirs.
    let other = client.get_own("/fhir/Patient/p2", &patient, now()).unwrap();
    assert_eq!(other.status, 403, "{}", other.body);

    // A clinician (an enrolled member, no patient) asking as if for their own records.
    let clinician = net.clinician.service_identity();
    let refused = client.get_own("/fhir/Observation", &clinician, now()).unwrap();
    assert_eq!(refused.status, 403);
    assert!(refused.refusal().unwrap().contains("not a patient"), "{:?}", refused.refusal());

    // A recorded self-access request, sent again, is a replay.
    let url = format!("{}/fhir/AllergyIntolerance", gateway.url);
    let signature =
        reqsig::sign_bound(&patient, "GET", &url, &reqsig::self_access_binding(), now(), &EntryNonce::generate());
    let send = || {
        reqwest::blocking::Client::new()
            .get(&url)
            .header("custodia-self-access", "patient")
            .header(reqsig::HEADER, &signature)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(send(), 200);
    assert_eq!(send(), 401);
    // A grant's signature does not pass for self-access, nor the other way round: the binding differs.
    let grant = net.grant(&["patient/AllergyIntolerance.rs"], 600);
    let as_grant = reqwest::blocking::Client::new()
        .get(&url)
        .header("custodia-grant", data_encoding::BASE64URL_NOPAD.encode(grant.to_compact_json().as_bytes()))
        .header(
            reqsig::HEADER,
            reqsig::sign_bound(&patient, "GET", &url, &reqsig::self_access_binding(), now(), &EntryNonce::generate()),
        )
        .send()
        .unwrap();
    assert_eq!(as_grant.status(), 401);

    // The patient's log holds their own reads, as theirs, with purpose PATRQT and no grant.
    let deadline = Instant::now() + Duration::from_secs(20);
    let own = loop {
        net.patient.sync(now()).unwrap();
        let own: Vec<_> = net
            .patient
            .access_events()
            .iter()
            .map(|a| a.event.statement().clone())
            .filter(|e| e.reader == e.patient && e.purpose.code() == "PATRQT")
            .collect();
        if own.len() >= 4 || Instant::now() > deadline {
            break own;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(own.iter().filter(|e| e.outcome == Outcome::Allowed).count(), 3, "{own:#?}");
    assert!(own.iter().all(|e| e.grant_id.is_none()));
    assert!(own.iter().any(|e| e.outcome == Outcome::Denied && e.request == "GET Patient/p2"), "{own:#?}");
}
