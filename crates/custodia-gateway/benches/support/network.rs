//! A whole network in one process, for the gateway's benchmark and tests: a ledger on loopback with a real
//! SQLite file, the network authority, a patient linked to the dataset's `p1`, a clinician (provider), an
//! emergency clinician, and gateways started on demand.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // Set-up code: a panic is the failure report.

use std::net::SocketAddr;

use custodia_core::entry::Role;
use custodia_core::grant::{GrantRequest, VerifiedGrant};
use custodia_core::purpose::PurposeOfUse;
use custodia_core::time::Timestamp;
use custodia_gateway::links::Links;
use custodia_gateway::records::Records;
use custodia_gateway::{GatewayConfig, RunningGateway};
use custodia_ledger::{LedgerDir, RunningLedger, default_limits};
use custodia_wallet::ledger::NewMember;
use custodia_wallet::vault::{KdfParams, Passphrase};
use custodia_wallet::wallet::Wallet;

pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    Timestamp::from_unix(secs as i64).unwrap()
}

/// A benchmark's command line: `--bench` when run by `cargo bench` (else test mode, tiny sizes), and
/// `--flag value` options.
pub struct CommandLine(Vec<String>);

impl CommandLine {
    pub fn read() -> Self {
        Self(std::env::args().skip(1).collect())
    }

    pub fn test_mode(&self) -> bool {
        !self.0.iter().any(|a| a == "--bench")
    }

    pub fn value<T: std::str::FromStr>(&self, flag: &str) -> Option<T> {
        self.0.iter().position(|a| a == flag).and_then(|i| self.0.get(i + 1)).and_then(|v| v.parse().ok())
    }
}

pub struct Network {
    pub rt: tokio::runtime::Runtime,
    pub ledger: Option<RunningLedger>,
    pub ledger_url: String,
    pub dir: tempfile::TempDir,
    pub authority: Wallet,
    pub patient: Wallet,
    pub clinician: Wallet,
    pub er: Wallet,
    pub gateway: Wallet,
    /// More patients the gateways started from now on link to the dataset's `p1`.
    pub more_patients: Vec<custodia_core::SigningPublicKey>,
}

pub fn wallet(dir: &std::path::Path, name: &str) -> Wallet {
    Wallet::create(
        &dir.join(name),
        name,
        Passphrase::new("bench passphrase".into()).unwrap(),
        KdfParams::TESTING,
        now(),
    )
    .unwrap()
}

impl Network {
    pub fn start() -> Network {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut authority = wallet(dir.path(), "authority");
        let (ledger_dir, _) = LedgerDir::init(&dir.path().join("ledger"), authority.signing_key(), None).unwrap();
        let store = custodia_ledger::open_store(&ledger_dir, None).unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut limits = default_limits();
        limits.entries_per_key_per_second = 1_000_000;
        let ledger = rt.block_on(custodia_ledger::start(&ledger_dir, store, addr, limits)).unwrap();
        let ledger_url = format!("http://{}", ledger.addr);
        let mut patient = wallet(dir.path(), "patient");
        let clinician = wallet(dir.path(), "clinician");
        let er = wallet(dir.path(), "er");
        let gateway = wallet(dir.path(), "gateway");
        for (who, role, name, org) in [
            (&clinician, Role::Provider, "Dr Grace Hopper", "Riverside Clinic"),
            (&er, Role::Emergency, "Dr Rosa Lee", "St Mary's Emergency Department"),
            (&gateway, Role::Gateway, "St Mary's gateway", "St Mary's Hospital"),
        ] {
            let member = NewMember {
                key: who.signing_key(),
                box_key: who.identity().box_public(),
                role,
                name: name.into(),
                org: org.into(),
            };
            authority.enroll_member(&ledger_url, None, member, now()).unwrap();
        }
        patient.enroll(&ledger_url, None, now()).unwrap();
        Network {
            rt,
            ledger: Some(ledger),
            ledger_url,
            dir,
            authority,
            patient,
            clinician,
            er,
            gateway,
            more_patients: Vec::new(),
        }
    }

    /// Stops the ledger (its data stays), as an outage would.
    pub fn stop_ledger(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            self.rt.block_on(ledger.shutdown()).unwrap();
        }
    }

    /// Starts the ledger again from its folder, on a new port; the patient's wallet follows it.
    pub fn restart_ledger(&mut self) {
        let dir = LedgerDir::open(&self.dir.path().join("ledger")).unwrap();
        let store = custodia_ledger::open_store(&dir, None).unwrap();
        let mut limits = default_limits();
        limits.entries_per_key_per_second = 1_000_000;
        let ledger =
            self.rt.block_on(custodia_ledger::start(&dir, store, "127.0.0.1:0".parse().unwrap(), limits)).unwrap();
        self.ledger_url = format!("http://{}", ledger.addr);
        self.ledger = Some(ledger);
        self.patient.move_ledger(&self.ledger_url).unwrap();
    }

    /// A gateway over `records`, its outbox in a fresh file.
    pub fn start_gateway(&self, records: Records, name: &str) -> RunningGateway {
        let _ = std::fs::remove_file(self.dir.path().join(format!("{name}-outbox.sqlite")));
        self.start_gateway_with_outbox(records, name)
    }

    /// A gateway over `records`, with the outbox an earlier gateway of that name left.
    pub fn start_gateway_with_outbox(&self, records: Records, name: &str) -> RunningGateway {
        self.start_gateway_with_tls(records, name, None)
    }

    /// A gateway over `records` that terminates TLS with `tls`, when given.
    pub fn start_gateway_with_tls(
        &self,
        records: Records,
        name: &str,
        tls: Option<custodia_net::ServerTls>,
    ) -> RunningGateway {
        let mut links = Links::default();
        for key in std::iter::once(self.patient.signing_key()).chain(self.more_patients.iter().copied()) {
            links.insert(key, custodia_gateway::links::Target::FhirId("p1".into()));
        }
        let config = GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            public_url: None,
            ledger_url: self.ledger_url.clone(),
            ledger_key: None,
            records,
            links: custodia_gateway::links::LiveLinks::fixed(links),
            outbox: self.dir.path().join(format!("{name}-outbox.sqlite")),
            tls,
            witness_policy: None,
        };
        self.rt.block_on(custodia_gateway::start(self.gateway.service_identity(), config)).unwrap()
    }

    /// A grant from the patient to the clinician, posted.
    pub fn grant(&mut self, scopes: &[&str], seconds: u64) -> VerifiedGrant {
        let request = GrantRequest {
            grantee: self.clinician.signing_key(),
            scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
            allowed_labels: Vec::new(),
            purpose: PurposeOfUse::TREATMENT,
            duration_seconds: seconds,
            max_reads: None,
            note: String::new(),
        };
        let grant = self.patient.issue_grant(request, now()).unwrap();
        self.patient.post_grant(grant.id, now()).unwrap();
        grant
    }
}

impl Network {
    /// `n` grants from the patient to the clinician, posted in batches straight to the ledger (the
    /// patient's wallet is not asked to keep them all): a hospital's worth of active grants.
    #[allow(dead_code)] // Used by the benchmark, not by every test that shares this file.
    pub fn bulk_grants(&self, n: usize, scopes: &[&str]) -> Vec<VerifiedGrant> {
        let patient = self.patient.service_identity();
        let grantee_box = self.clinician.identity().box_public();
        let mut ledger = custodia_wallet::Ledger::connect_with(&self.ledger_url, None, None).unwrap().0;
        let mut grants = Vec::with_capacity(n);
        let mut batch = Vec::new();
        for i in 0..n {
            let request = GrantRequest {
                grantee: self.clinician.signing_key(),
                scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
                allowed_labels: Vec::new(),
                purpose: PurposeOfUse::TREATMENT,
                duration_seconds: 86_400,
                max_reads: None,
                note: String::new(),
            };
            let grant = request.sign(&patient, now()).unwrap();
            batch.push(custodia_wallet::ledger::grant_entry(&patient, &grant, &grantee_box, now()).unwrap());
            grants.push(grant);
            if batch.len() == 256 || i + 1 == n {
                ledger.append(&batch).unwrap();
                batch.clear();
            }
        }
        grants
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            let _ = self.rt.block_on(ledger.shutdown());
        }
    }
}
