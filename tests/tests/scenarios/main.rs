//! Every scenario across crates, as one test binary: the process-level scenarios (each a chain of real
//! `custodia` processes) run side by side, one per core, rather than one binary after another.

mod emergency;
mod gateway;
mod ledger;
mod ops;
mod patient_loop;
mod recovery;
mod tls;
mod vectors;
mod witnesses;
