//! The Custodia wallet library, shared by the app and the `custodia` CLI.
//!
//! It owns everything with state: the encrypted vault file and its lock ([`vault`]), and the wallet's
//! keys and records with every user-level operation ([`wallet`]). The protocol itself (what a grant is,
//! what it allows) lives in custodia-core; this crate stores and acts. It has no UI, no Tauri, and for
//! now no network: the ledger client arrives with the ledger.

pub mod vault;
pub mod wallet;

pub use wallet::{IssuedGrant, LockedWallet, Wallet, WalletError};
