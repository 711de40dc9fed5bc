//! Proxy mode: the gateway in front of another FHIR server applies the same rules as over its own data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

#[path = "../benches/support/network.rs"]
mod setup;

use std::sync::Arc;

use custodia_gateway::dataset::Dataset;
use custodia_gateway::records::Records;
use custodia_wallet::fhir_client::GatewayClient;
use serde_json::Value;
use setup::{Network, now};

fn ids(bundle: &Value) -> Vec<&str> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn a_proxy_filters_an_upstream_servers_records_as_it_does_its_own() {
    let mut net = Network::start();
    let upstream = net.rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let upstream_url = format!("http://{}/fhir", upstream.local_addr().unwrap());
    let app = custodia_gateway::unchecked_router(Records::Local(Arc::new(Dataset::synthetic())));
    net.rt.spawn(async move { axum::serve(upstream, app).await });
    let gateway =
        net.start_gateway(Records::upstream(&upstream_url, custodia_gateway::upstream::Auth::None).unwrap(), "proxy");
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
