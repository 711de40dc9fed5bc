//! Custodia's protocol, with no I/O and no async.
//!
//! This crate holds everything a patient's wallet, a gateway and a ledger must agree on byte for byte:
//! identity keys derived from one master seed, sealed boxes, signed statements in DSSE envelopes, the
//! scope language and the policy check, the FHIR Consent export, the QR payload codec and Shamir shares.
//!
//! It does **not** read files, open sockets, keep clocks or spawn tasks: the caller passes in bytes and
//! the current time, so every function here is deterministic apart from the randomness it asks the OS for
//! when it makes a key, a nonce or an id.

pub mod access_request;
pub mod audit_event;
pub mod binary;
pub mod cofactored;
pub mod consent;
pub mod dsse;
pub mod entry;
pub mod grant;
pub mod keys;
pub mod labels;
pub mod ledger_api;
pub mod policy;
pub mod printable;
pub mod purpose;
pub mod qr;
pub mod recovery;
pub mod reqsig;
pub mod scope;
pub mod seal;
pub mod shamir;
pub mod sse;
pub mod statement;
pub mod time;

mod codes;
mod random;

pub use keys::{BoxPublicKey, Fingerprint, Identity, MasterSeed, SigningPublicKey};
