//! Transparency-log primitives, with no I/O.
//!
//! The ledger appends entries to an append-only Merkle tree and publishes signed checkpoints of it;
//! wallets and auditors check that an entry is in the tree and that a newer checkpoint extends an older
//! one. This crate is the math and the text formats both sides must agree on byte for byte:
//!
//! - [`hash`]: RFC 6962 / RFC 9162 leaf and node hashing.
//! - [`tree`]: node ids, the [`Frontier`] that appends leaves and yields the nodes to store, and the
//!   [`HashReader`] trait through which proofs read stored nodes.
//! - [`proof`]: inclusion and consistency proofs (RFC 9162 2.1.3 and 2.1.4), made and verified.
//! - [`note`]: C2SP signed notes with Ed25519, verifier keys (`vkey`) and signer keys (`skey`).
//! - [`checkpoint`]: C2SP tlog-checkpoint text, signed and opened.
//! - [`cosignature`]: C2SP tlog-cosignature v1 (timestamped Ed25519 witness cosignatures).
//! - [`witness`]: C2SP tlog-witness `add-checkpoint` bodies and the checks a witness makes.
//! - [`policy`]: C2SP tlog-policy, the logs, witnesses and quorum a client accepts checkpoints under.
//! - [`tlog_proof`]: C2SP tlog-proof, an offline proof of inclusion with its cosigned checkpoint.
//!
//! It does **not** store anything, talk to a network, read a clock or spawn tasks: storage is the
//! caller's [`HashReader`], and a cosignature's time is passed in. Every parser here takes untrusted
//! text, caps what it will read, and never panics.

pub mod checkpoint;
pub mod cosignature;
pub mod hash;
pub mod note;
pub mod policy;
pub mod proof;
pub mod tiles;
pub mod tlog_proof;
pub mod tree;
pub mod witness;

pub use checkpoint::Checkpoint;
pub use hash::{Hash, empty_root, leaf_hash, node_hash};
pub use note::{NoteSigner, NoteVerifier, SignedNote};
pub use tree::{Frontier, HashReader, NodeId};
