//! Nothing read is lost: a read answered while the ledger is down has its access event kept in the outbox,
//! across a gateway restart, and posted once the ledger is back; the patient sees it, verified, once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

#[path = "../benches/support/network.rs"]
mod setup;

use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_core::entry::Outcome;
use custodia_gateway::dataset::Dataset;
use custodia_gateway::records::Records;
use custodia_wallet::fhir_client::GatewayClient;
use setup::{Network, now};

#[test]
fn events_of_reads_made_during_a_ledger_outage_survive_a_restart_and_reach_the_patient() {
    let mut net = Network::start();
    let records = Records::Local(Arc::new(Dataset::synthetic()));
    let grant = net.grant(&["patient/AllergyIntolerance.rs"], 3600);
    let gateway = net.start_gateway(records.clone(), "outage");
    let client = GatewayClient::new(&gateway.url).unwrap();
    let clinician = net.clinician.service_identity();
    let read = |client: &GatewayClient| {
        client.get("/fhir/AllergyIntolerance/p1-allergy-1", &grant, &clinician, None, None, now()).unwrap()
    };
    assert_eq!(read(&client).status, 200);

    // The ledger goes down; within the grant state's half second the next read is still answered, and its
    // event waits in the outbox. Later reads are refused: the grant's state cannot be checked.
    net.stop_ledger();
    assert_eq!(read(&client).status, 200);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(read(&client).status, 503);
    assert!(gateway.shared.outbox.pending() >= 1, "the read's event is kept");
    net.rt.block_on(gateway.shutdown()).unwrap();

    // Ledger back, gateway restarted on the same outbox: everything is posted.
    net.restart_ledger();
    let gateway = net.start_gateway_with_outbox(records, "outage");
    let deadline = Instant::now() + Duration::from_secs(20);
    while gateway.shared.outbox.pending() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gateway.shared.outbox.pending(), 0);
    net.patient.sync(now()).unwrap();
    let allowed = net.patient.access_events().iter().filter(|a| a.event.outcome == Outcome::Allowed).count();
    assert_eq!(allowed, 2, "both answered reads, once each");
    net.rt.block_on(gateway.shutdown()).unwrap();
}
