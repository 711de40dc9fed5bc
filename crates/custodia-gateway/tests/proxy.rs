//! Proxy mode: the gateway in front of another FHIR server applies the same rules as over its own data,
//! reaching it over HTTPS, signing in to it, and answering for it when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

#[path = "../benches/support/network.rs"]
mod setup;
#[path = "support/stand_in.rs"]
mod stand_in;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use custodia_gateway::dataset::Dataset;
use custodia_gateway::records::Records;
use custodia_gateway::upstream::{AssertionKey, Auth, SmartClient};
use custodia_wallet::fhir_client::GatewayClient;
use serde_json::Value;
use setup::{Network, now};
use stand_in::StandIn;

fn ids(bundle: &Value) -> Vec<&str> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

/// A certificate for 127.0.0.1 from a test CA that every client of this process trusts; set before any
/// client is made, by whichever test runs first.
fn upstream_certificate() -> &'static custodia_net::TlsFiles {
    static PKI: std::sync::OnceLock<(tempfile::TempDir, custodia_net::TlsFiles)> = std::sync::OnceLock::new();
    let (_, files) = PKI.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ca = custodia_net::test_ca::TestCa::new("Proxy test CA");
        custodia_net::Trust::configure(Some(&ca.write_ca(dir.path()))).unwrap();
        let files = ca.write_server(dir.path(), "upstream", &["127.0.0.1"], custodia_net::test_ca::Validity::Current);
        (dir, files)
    });
    files
}

#[test]
fn a_proxy_filters_an_upstream_servers_records_as_it_does_its_own() {
    let certificate = upstream_certificate();
    let mut net = Network::start();
    // The upstream over HTTPS, its certificate checked against the process's trust.
    let tls = custodia_net::ServerTls::new(certificate).unwrap();
    let upstream = net.rt.block_on(custodia_net::Listener::bind("127.0.0.1:0".parse().unwrap(), Some(tls))).unwrap();
    let upstream_url = format!("https://{}/fhir", upstream.local_addr().unwrap());
    let app = custodia_gateway::unchecked_router(Records::Local(Arc::new(Dataset::synthetic())));
    net.rt.spawn(async move { axum::serve(upstream, app).await });
    let gateway = net.start_gateway(Records::upstream(&upstream_url, Auth::None).unwrap(), "proxy");
    let grant = net.grant(&["patient/DocumentReference.rs", "patient/AllergyIntolerance.rs"], 3600);
    let client = GatewayClient::new(&gateway.url).unwrap();
    let get = |path: &str| client.get(path, &grant, net.clinician.identity(), None, None, now()).unwrap();

    let notes = get("/fhir/DocumentReference?patient=p1");
    assert_eq!(notes.status, 200, "{}", notes.body);
    assert_eq!(ids(&notes.body), vec!["p1-visit-note"], "the PSY note is withheld: {}", notes.body);
    assert_eq!(notes.body["total"], 1);
    assert_eq!(get("/fhir/DocumentReference/p1-visit-note").status, 200);
    let psy = get("/fhir/DocumentReference/p1-psy-note");
    let absent = get("/fhir/DocumentReference/p1-nothing");
    assert_eq!((psy.status, absent.status), (403, 403));
    assert_eq!(psy.body, absent.body, "withheld and absent look the same");
    // Another patient's record, even by id, is not this grant's.
    assert_eq!(get("/fhir/AllergyIntolerance/p2-allergy-1").status, 403);
    assert_eq!(get("/fhir/AllergyIntolerance?patient=p2").status, 403);
    assert_eq!(get("/fhir/MedicationRequest?patient=p1").status, 403, "a type the grant does not name");
    net.rt.block_on(gateway.shutdown()).unwrap();
}

#[test]
fn a_proxy_authenticates_as_a_smart_backend_client_follows_pages_and_survives_a_bad_upstream() {
    upstream_certificate();
    let mut net = Network::start();
    let pem = AssertionKey::generate_es384_pem().unwrap();
    let jwks = AssertionKey::from_pem(pem.as_bytes()).unwrap().jwks("k1");
    let st = StandIn::start(net.rt.handle(), &jwks, "custodia-gateway", None);

    // Without credentials the upstream refuses, and the gateway does not start.
    let anonymous = Records::upstream(&st.fhir_base(), Auth::None).unwrap();
    let refused = net.rt.block_on(anonymous.prepare()).unwrap_err();
    assert!(refused.to_string().contains("credentials"), "{refused}");

    let key = AssertionKey::from_pem(pem.as_bytes()).unwrap();
    let client = SmartClient::new("custodia-gateway", &st.token_url, key, Some("k1"), None).unwrap();
    let records = Records::upstream(&st.fhir_base(), Auth::Smart(Box::new(client))).unwrap();
    let gateway = net.start_gateway(records, "smart");
    let scopes = [
        "patient/Observation.rs",
        "patient/Condition.rs",
        "patient/Immunization.rs",
        "patient/MedicationRequest.rs",
        "patient/DiagnosticReport.rs",
    ];
    let grant = net.grant(&scopes, 3600);
    let reader = GatewayClient::new(&gateway.url).unwrap();
    let get = |path: &str| reader.get(path, &grant, net.clinician.identity(), None, None, now()).unwrap();

    // Every page: the synthetic patient has nine observations, here in pages of two (one withheld by its label).
    let observations = get("/fhir/Observation?patient=p1");
    assert_eq!(observations.status, 200, "{}", observations.body);
    let ids = ids(&observations.body);
    assert_eq!(ids.len(), 8, "all pages but the HIV result: {ids:?}");
    assert!(!ids.contains(&"p1-hiv-result"));
    assert_eq!(get("/fhir/Condition?patient=p1").status, 200);
    assert_eq!(st.issued(), 1, "one token serves every request until it expires");

    // The upstream drops the token: the gateway gets a new one and the read goes through.
    st.revoke();
    assert_eq!(get("/fhir/Condition?patient=p1").status, 200);
    assert_eq!(st.issued(), 2);

    // A slow, a failing and a non-FHIR upstream: each a clear OperationOutcome and an access event.
    let journaled = || gateway.shared.outbox.stats.journaled.load(Ordering::SeqCst);
    let before = journaled();
    let started = std::time::Instant::now();
    let slow = get("/fhir/Immunization?patient=p1");
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert!(started.elapsed() < Duration::from_secs(15), "the gateway gives up after its timeout");
    let failing = get("/fhir/MedicationRequest?patient=p1");
    assert_eq!(failing.status, 502);
    assert!(failing.body["issue"][0]["diagnostics"].as_str().unwrap().contains("500"), "{}", failing.body);
    let html = get("/fhir/DiagnosticReport?patient=p1");
    assert_eq!(html.status, 502);
    assert_eq!(html.body["resourceType"], "OperationOutcome");
    assert!(html.body["issue"][0]["diagnostics"].as_str().unwrap().contains("not FHIR"), "{}", html.body);
    assert_eq!(journaled() - before, 3, "each failed read is an access event");
    // A type the upstream's CapabilityStatement does not list is not offered.
    assert_eq!(get("/fhir/Medication?patient=p1").status, 404);
    net.rt.block_on(gateway.shutdown()).unwrap();
}
