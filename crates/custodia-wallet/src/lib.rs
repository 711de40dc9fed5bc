//! The Custodia wallet library, shared by the app and the `custodia` CLI.
//!
//! It owns everything with state: the encrypted vault file and its lock ([`vault`]), the wallet's keys
//! and records with every user-level operation ([`wallet`]), and the wallet's side of the ledger: a
//! verifying client that accepts a checkpoint only if it extends the last one and an entry only with its
//! proof ([`ledger`]), and a full audit of a ledger's public tiles ([`audit`]). The protocol itself (what
//! a grant is, what it allows) lives in custodia-core and the log math in custodia-log; this crate
//! stores, talks to the ledger and acts. It has no UI and no Tauri, and its network calls are blocking:
//! run them off any UI thread and outside async tasks.

pub mod audit;
pub mod fhir_client;
pub mod ledger;
pub mod network;
pub mod notices;
pub mod own_records;
pub mod vault;
pub mod wallet;

pub use ledger::{Ledger, LedgerClient, LedgerError};
pub use wallet::{IssuedGrant, LockedWallet, Wallet, WalletError};
