//! Revocations pushed, not polled: the gateway follows the ledger's grant-change feed, asks the ledger
//! about a grant once, and refuses a revoked grant within a second of the revocation being logged.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

#[path = "../benches/support/network.rs"]
mod setup;

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_core::ledger_api::GrantChange;
use custodia_core::reqsig;
use custodia_gateway::dataset::Dataset;
use custodia_gateway::records::Records;
use custodia_wallet::fhir_client::GatewayClient;
use setup::{Network, now};

/// The first `event: change` of the ledger's feed from `after`, read as `signer`; or the refusal's status.
fn first_change(ledger: &str, signer: &custodia_core::Identity, after: u64) -> Result<GrantChange, u16> {
    let target = "/v1/grant-changes";
    let response = reqwest::blocking::Client::new()
        .get(format!("{ledger}{target}"))
        .header(reqsig::HEADER, reqsig::sign(signer, "GET", target, b"", now()))
        .header("last-event-id", after.to_string())
        .send()
        .unwrap();
    if !response.status().is_success() {
        return Err(response.status().as_u16());
    }
    let mut response = response;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = response.read(&mut buf).unwrap();
        assert!(n > 0, "the feed ended before a change: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(at) = text.find("event: change") {
            let event = &text[at..];
            if let Some(end) = event.find("\n\n") {
                let data = event[..end].lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                return Ok(serde_json::from_str(data).unwrap());
            }
        }
    }
}

#[test]
fn a_revocation_is_pushed_to_the_gateway_and_refused_within_a_second() {
    let mut net = Network::start();
    let gateway = net.start_gateway(Records::Local(Arc::new(Dataset::synthetic())), "feed");
    let grant = net.grant(&["patient/Condition.rs"], 3600);
    let client = GatewayClient::new(&gateway.url).unwrap();
    let clinician = net.clinician.service_identity();
    let read = || client.get("/fhir/Condition?patient=p1", &grant, &clinician, None, None, now()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gateway.shared.feed.is_fresh() {
        assert!(Instant::now() < deadline, "the gateway follows the ledger's feed");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Reads for well past the half-second a state was once trusted: the ledger is asked once.
    let asked = custodia_gateway::ops::STATE_LOOKUPS.get();
    let until = Instant::now() + Duration::from_millis(1500);
    let mut reads = 0;
    while Instant::now() < until {
        assert_eq!(read().status, 200);
        reads += 1;
    }
    assert_eq!(custodia_gateway::ops::STATE_LOOKUPS.get() - asked, 1, "one lookup for {reads} reads");

    // The patient revokes; the next reads are refused within a second.
    net.patient.revoke_grant(grant.id, now(), "").unwrap();
    net.patient.post_revocation(grant.id, now()).unwrap();
    let revoked = Instant::now();
    let refused = loop {
        let reply = read();
        if reply.status != 200 {
            break reply;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "still served {:?} after the revocation",
            revoked.elapsed()
        );
    };
    let took = revoked.elapsed();
    assert_eq!(refused.status, 403);
    assert!(refused.body.to_string().contains("revoked"), "{}", refused.body);
    println!("revocation to refusal: {took:?}");
    assert!(took < Duration::from_secs(1));
    let applied = || gateway.shared.feed.changes.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(1);
    while applied() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        applied(),
        1,
        "the refusal came from the feed's change (alarms {}, lookups {})",
        gateway.shared.feed.alarms.load(std::sync::atomic::Ordering::Relaxed),
        custodia_gateway::ops::STATE_LOOKUPS.get() - asked
    );
    assert_eq!(custodia_gateway::ops::STATE_LOOKUPS.get() - asked, 1, "and not from asking the ledger again");

    // The feed itself: resumable from a position, the change with its inclusion proof, for gateways only.
    let change = first_change(&net.ledger_url, &net.gateway.service_identity(), 0).unwrap();
    assert_eq!(change.grant_id, Some(grant.id));
    let deadline = Instant::now() + Duration::from_secs(10);
    let proven = loop {
        let change = first_change(&net.ledger_url, &net.gateway.service_identity(), 0).unwrap();
        if change.proof.is_some() || Instant::now() > deadline {
            break change;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let proof = proven.proof.as_ref().expect("a published change comes with its proof");
    assert_eq!(proof.entry.index, proven.index);
    let mut ledger = custodia_wallet::Ledger::connect_with(&net.ledger_url, None, None).unwrap().0;
    ledger.check_grant_change(&proven).unwrap();
    assert_eq!(first_change(&net.ledger_url, &clinician, 0).unwrap_err(), 403, "a provider may not follow it");
    assert_eq!(gateway.shared.feed.alarms.load(std::sync::atomic::Ordering::Relaxed), 0);
    net.rt.block_on(gateway.shutdown()).unwrap();
}
