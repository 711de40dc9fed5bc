//! One conformance suite for every [`Store`]: the same checks run against SQLite (a file in a temporary
//! directory) and PostgreSQL (a fresh database on the server named by `CUSTODIA_TEST_POSTGRES`, which
//! `cargo xtask test` starts). Batches are built as the sequencer builds them: real leaves, and the nodes
//! and root a [`Frontier`] yields.

use std::collections::{BTreeMap, HashSet};
use std::slice;

use custodia_core::entry::{Digest, EntryKind, EntryNonce, LEAF_LEN, Leaf, Role, Tag};
use custodia_core::grant::GrantId;
use custodia_core::{Identity, MasterSeed, SigningPublicKey};
use custodia_log::{Frontier, Hash, NodeId, empty_root, leaf_hash};

use super::postgres::{PostgresStore, ScratchDatabase};
use super::sqlite::SqliteStore;
use super::{
    Batch, Effect, GrantRecord, MailMessage, MemberRecord, NewEntry, PatientRecord, Store, StoreError, StoreHashes,
    StoredEntry, TreeState,
};

/// The connection string of a PostgreSQL server the suite may create databases on.
const POSTGRES_URL_VAR: &str = "CUSTODIA_TEST_POSTGRES";

pub(super) fn run_all(store: &dyn Store) {
    empty_tree(store);
    let mut log = Log::new(store);
    appended_batches_read_back(&mut log);
    stale_batch_conflicts(&mut log);
    failed_batch_leaves_nothing_behind(&mut log);
    entries_by_tag_pages(&mut log);
    effects_are_indexed(&mut log);
    revocation_marks_the_grant(&mut log);
    redaction_deletes_earlier_bodies_of_its_tag(&mut log);
    rotation_moves_the_patient_and_recovery_entries_are_found(&mut log);
    checkpoints_only_move_forward(&mut log);
    mailbox(store);
}

#[test]
fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open(&path).unwrap();
    run_all(&store);
    front_ends_take_turns(&store, &SqliteStore::open(&path).unwrap());
}

#[test]
fn postgres_store_conforms() {
    let Ok(url) = std::env::var(POSTGRES_URL_VAR) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must test the PostgreSQL store: set {POSTGRES_URL_VAR} (cargo xtask test starts a server and sets it)"
        );
        eprintln!(
            "postgres_store_conforms: skipped, {POSTGRES_URL_VAR} is not set (cargo xtask test starts a server and sets it)"
        );
        return;
    };
    let db = ScratchDatabase::create(&url, "custodia_test").unwrap();
    let store = PostgresStore::from_config(&db.config).unwrap();
    run_all(&store);
    postgres_refuses_a_replayed_envelope(&mut Log::new(&store));
    front_ends_take_turns(&store, &PostgresStore::from_config(&db.config).unwrap());
}

// ---- the checks ----

fn empty_tree(store: &dyn Store) {
    assert_eq!(store.tree().unwrap(), TreeState { size: 0, root: empty_root(), checkpoint: None });
    assert_eq!(store.read_leaves(0, 0).unwrap(), Vec::<[u8; LEAF_LEN]>::new());
    assert!(matches!(store.read_hashes(&[NodeId::new(0, 0)]), Err(StoreError::Corrupt(_))));
    assert_eq!(store.entries_by_tag(&person(1).ledger_tag(), None, 10).unwrap(), []);
}

/// Runs on the empty store: two batches, then every read returns exactly what was stored.
fn appended_batches_read_back(log: &mut Log<'_>) {
    let store = log.store;
    assert_eq!(log.size(), 0);
    let tag = person(1).ledger_tag();
    let first = log.append(&[access(tag), access(tag), access(tag)]);
    let second = log.append(&[access(tag), access(tag), access(tag), access(tag)]);

    let state = store.tree().unwrap();
    assert_eq!(state, TreeState { size: 7, root: log.frontier.root(), checkpoint: None });
    assert_ne!(state.root, empty_root());

    assert_eq!(store.read_leaves(0, 7).unwrap(), log.leaves);
    assert_eq!(store.read_leaves(2, 5).unwrap(), log.leaves[2..5]);
    assert!(matches!(store.read_leaves(5, 8), Err(StoreError::Corrupt(_))), "entry 7 does not exist yet");
    assert_eq!(store.entry(0).unwrap(), Some(stored(&first[0])));
    assert_eq!(store.entry(3).unwrap(), Some(stored(&second[0])));
    assert_eq!(store.entry(7).unwrap(), None);

    let leaf_hashes: Vec<Hash> = log.leaves.iter().map(|l| leaf_hash(l)).collect();
    assert_eq!(store.read_level(0, 0, 7).unwrap(), leaf_hashes);
    assert_eq!(store.read_level(1, 0, 3).unwrap(), log.level(1, 0..3));
    assert_eq!(store.read_level(2, 0, 1).unwrap(), log.level(2, 0..1));
    assert!(matches!(store.read_level(1, 0, 4), Err(StoreError::Corrupt(_))), "node (1, 3) is not complete");

    // In the order asked, repeats included.
    let ids = [NodeId::new(2, 0), NodeId::new(0, 6), NodeId::new(1, 2), NodeId::new(0, 0), NodeId::new(2, 0)];
    let expected: Vec<Hash> = ids.iter().map(|id| log.nodes[id]).collect();
    assert_eq!(store.read_hashes(&ids).unwrap(), expected);
    assert!(matches!(store.read_hashes(&[NodeId::new(0, 1), NodeId::new(0, 7)]), Err(StoreError::Corrupt(_))));
    assert_eq!(store.read_hashes(&[]).unwrap(), []);

    // Proofs served from the store see the tree the sequencer built.
    assert_eq!(Frontier::load(7, &StoreHashes(store)).unwrap().root(), state.root);

    // Ranges of whole entries, for the sequencer's replay window; short at the end of the log.
    let all: Vec<StoredEntry> = first.iter().chain(&second).map(stored).collect();
    assert_eq!(store.read_entries(2, 5).unwrap(), all[2..5]);
    assert_eq!(store.read_entries(5, 100).unwrap(), all[5..]);
    assert_eq!(store.read_entries(7, 8).unwrap(), []);
}

fn stale_batch_conflicts(log: &mut Log<'_>) {
    let store = log.store;
    let tag = person(1).ledger_tag();
    let size = log.size();
    let stale = log.batch(&[access(tag)]);
    let mut ahead = log.batch(&[access(tag)]);
    ahead.old_size = size + 5;
    // Another front end appends first.
    log.append(&[access(tag)]);
    let after = store.tree().unwrap();

    let err = store.append(&stale).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { expected, actual } if expected == size && actual == size + 1),
        "{err}"
    );
    let err = store.append(&ahead).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { expected, actual } if expected == size + 5 && actual == size + 1));
    assert_eq!(store.tree().unwrap(), after);
    assert_eq!(store.read_entries(size + 1, size + 3).unwrap(), []);
}

fn failed_batch_leaves_nothing_behind(log: &mut Log<'_>) {
    let store = log.store;
    let before = store.tree().unwrap();
    let (patient, provider, grant_id) = (person(3), person(4), GrantId::generate());
    let tag = patient.ledger_tag();
    let mut batch =
        log.batch(&[enroll(&patient), member(4, Role::Provider), grant(&patient, grant_id), access(tag), access(tag)]);
    batch.checkpoint = Some(note(before.size + 5));
    // The fourth entry enrolls a second patient under the first one's tag: the database refuses it.
    let bad = Effect::Patient { key: person(98).signing_public(), box_key: person(98).box_public(), tag };
    let original = std::mem::replace(&mut batch.entries[3].effect, bad);

    assert!(store.append(&batch).is_err());
    assert_eq!(store.tree().unwrap(), before, "size, root and checkpoint are unchanged");
    assert!(store.read_leaves(before.size, before.size + 1).is_err());
    assert_eq!(store.entry(before.size).unwrap(), None);
    assert!(store.read_hashes(&[batch.nodes[0].0]).is_err());
    assert_eq!(store.entries_by_tag(&tag, None, 100).unwrap(), []);
    assert_eq!(store.read_entries(before.size, before.size + 5).unwrap(), []);
    assert_eq!(store.patient(&patient.signing_public()).unwrap(), None);
    assert_eq!(store.patient_by_tag(&tag).unwrap(), None);
    assert_eq!(store.member(&provider.signing_public()).unwrap(), None);
    assert_eq!(store.grant(&grant_id).unwrap(), None);

    // Without the bad row the same batch goes in: no row of the failed attempt is in its way.
    batch.entries[3].effect = original;
    log.commit(batch);
    assert_eq!(store.tree().unwrap().checkpoint, Some(note(before.size + 5)));
    assert!(store.patient(&patient.signing_public()).unwrap().is_some());
    assert!(store.grant(&grant_id).unwrap().is_some());
}

/// PostgreSQL also refuses a replayed envelope itself (a unique index), beside the front ends' windows.
fn postgres_refuses_a_replayed_envelope(log: &mut Log<'_>) {
    let store = log.store;
    let before = store.tree().unwrap();
    let tag = person(1).ledger_tag();
    let mut batch = log.batch(&[access(tag), access(tag)]);
    let replayed = Leaf::parse(&log.leaves[0]).unwrap().envelope_hash;
    batch.entries[1].envelope_hash = replayed;
    let err = store.append(&batch).unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(h) if h == replayed), "{err}");
    let mut twice = log.batch(&[access(tag), access(tag)]);
    twice.entries[1].envelope_hash = twice.entries[0].envelope_hash;
    let err = store.append(&twice).unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(h) if h == twice.entries[0].envelope_hash), "{err}");
    assert_eq!(store.tree().unwrap(), before);
}

fn entries_by_tag_pages(log: &mut Log<'_>) {
    let store = log.store;
    let (mine, other) = (person(5).ledger_tag(), person(6).ledger_tag());
    let added =
        log.append(&[access(mine), access(other), access(mine), member(7, Role::Gateway), access(mine), access(other)]);
    let expected: Vec<StoredEntry> = added.iter().filter(|e| e.tag == Some(mine)).map(stored).collect();
    assert_eq!(expected.len(), 3);
    let page = |after: Option<usize>, limit| store.entries_by_tag(&mine, after.map(|i| expected[i].index), limit);

    assert_eq!(page(None, 100).unwrap(), expected);
    assert_eq!(page(None, 2).unwrap(), expected[..2]);
    assert_eq!(page(Some(0), 100).unwrap(), expected[1..]);
    assert_eq!(page(Some(0), 1).unwrap(), expected[1..2]);
    assert_eq!(page(Some(2), 100).unwrap(), []);
    assert_eq!(page(None, 0).unwrap(), []);
    assert_eq!(store.entries_by_tag(&person(8).ledger_tag(), None, 100).unwrap(), []);
}

fn effects_are_indexed(log: &mut Log<'_>) {
    let store = log.store;
    let (patient, gateway, grant_id) = (person(9), person(10), GrantId::generate());
    let tag = patient.ledger_tag();
    let added = log.append(&[enroll(&patient), member(10, Role::Gateway), grant(&patient, grant_id)]);

    let enrolled =
        PatientRecord { key: patient.signing_public(), box_key: patient.box_public(), tag, index: added[0].index };
    assert_eq!(store.patient(&patient.signing_public()).unwrap(), Some(enrolled.clone()));
    assert_eq!(store.patient_by_tag(&tag).unwrap(), Some(enrolled));
    assert_eq!(
        store.member(&gateway.signing_public()).unwrap(),
        Some(MemberRecord {
            key: gateway.signing_public(),
            box_key: gateway.box_public(),
            role: Role::Gateway,
            name: "Member 10".into(),
            org: "Clinic 10".into(),
            index: added[1].index,
        })
    );
    assert_eq!(
        store.grant(&grant_id).unwrap(),
        Some(GrantRecord {
            grant_id,
            owner: patient.signing_public(),
            tag,
            index: added[2].index,
            digest: grant_digest(grant_id),
            revoked_index: None,
            redacted: false,
        })
    );

    assert_eq!(store.patient(&person(11).signing_public()).unwrap(), None);
    assert_eq!(store.patient_by_tag(&person(11).ledger_tag()).unwrap(), None);
    assert_eq!(store.member(&patient.signing_public()).unwrap(), None, "a patient is not a member");
    assert_eq!(store.patient(&gateway.signing_public()).unwrap(), None, "a member is not a patient");
    assert_eq!(store.grant(&GrantId::generate()).unwrap(), None);
}

fn revocation_marks_the_grant(log: &mut Log<'_>) {
    let store = log.store;
    let (patient, first, second) = (person(12), GrantId::generate(), GrantId::generate());
    log.append(&[enroll(&patient), grant(&patient, first)]);
    let revoked = log.append(&[revoke(&patient, first)]);
    assert_eq!(store.grant(&first).unwrap().unwrap().revoked_index, Some(revoked[0].index));

    // A grant and its revocation in one batch; a second revocation keeps the first one's index.
    let same_batch = log.append(&[grant(&patient, second), revoke(&patient, second), revoke(&patient, second)]);
    assert_eq!(store.grant(&second).unwrap().unwrap().revoked_index, Some(same_batch[1].index));
    log.append(&[revoke(&patient, first)]);
    assert_eq!(store.grant(&first).unwrap().unwrap().revoked_index, Some(revoked[0].index));
}

fn rotation_moves_the_patient_and_recovery_entries_are_found(log: &mut Log<'_>) {
    let store = log.store;
    let (old, new, newer) = (person(40), person(41), person(42));
    let tag = old.ledger_tag();
    let item = |kind| Item { kind, tag: Some(tag), effect: Effect::None };
    let rotate = |from: &Identity, to: &Identity| Item {
        kind: EntryKind::KeyRotation,
        tag: Some(tag),
        effect: Effect::Rotation {
            old_key: from.signing_public(),
            new_key: to.signing_public(),
            new_box_key: to.box_public(),
        },
    };
    let first =
        log.append(&[enroll(&old), item(EntryKind::GuardianSet), access(tag), item(EntryKind::RecoveryRequest)]);
    // Two rotations in one batch apply in order.
    let rotated = log.append(&[access(tag), rotate(&old, &new), item(EntryKind::RecoveryCancel), rotate(&new, &newer)]);

    assert_eq!(store.patient(&old.signing_public()).unwrap(), None);
    assert_eq!(store.patient(&new.signing_public()).unwrap(), None);
    let now = PatientRecord { key: newer.signing_public(), box_key: newer.box_public(), tag, index: first[0].index };
    assert_eq!(store.patient(&newer.signing_public()).unwrap(), Some(now.clone()));
    assert_eq!(store.patient_by_tag(&tag).unwrap(), Some(now));
    assert_eq!(store.retired(&old.signing_public()).unwrap(), Some((new.signing_public(), rotated[1].index)));
    assert_eq!(store.retired(&new.signing_public()).unwrap(), Some((newer.signing_public(), rotated[3].index)));
    assert_eq!(store.retired(&newer.signing_public()).unwrap(), None);

    let found: Vec<(u64, EntryKind)> =
        store.recovery_entries(&tag, 10).unwrap().iter().map(|e| (e.index, e.kind)).collect();
    let expected = [&rotated[3], &rotated[2], &rotated[1], &first[3], &first[1]].map(|e| (e.index, e.kind));
    assert_eq!(found, expected, "newest first, access events and the enrollment left out");
    assert_eq!(store.recovery_entries(&tag, 2).unwrap().len(), 2);
    assert!(store.recovery_entries(&person(43).ledger_tag(), 10).unwrap().is_empty());
}

fn redaction_deletes_earlier_bodies_of_its_tag(log: &mut Log<'_>) {
    let store = log.store;
    let (patient, neighbour) = (person(13), person(14));
    let (tag, other) = (patient.ledger_tag(), neighbour.ledger_tag());
    let [g1, g2, g3, g_other] = [(); 4].map(|()| GrantId::generate());
    log.append(&[
        enroll(&patient),
        grant(&patient, g1),
        access(tag),
        revoke(&patient, g1),
        enroll(&neighbour),
        grant(&neighbour, g_other),
        access(other),
    ]);
    let batch = log.append(&[grant(&patient, g2), access(tag), redact(tag), grant(&patient, g3), access(tag)]);
    log.append(&[access(tag), access(other)]);
    let redaction = batch[2].index;

    // Grants and access events of the tag before the redaction lose their bodies; the enrollment,
    // revocations, the redaction itself and everything after it keep theirs.
    let expected: Vec<StoredEntry> = log
        .entries
        .iter()
        .filter(|e| e.tag == Some(tag))
        .map(|e| {
            let mut s = stored(e);
            if e.index < redaction && matches!(e.kind, EntryKind::Grant | EntryKind::Access) {
                (s.payload, s.sig) = (None, None);
            }
            s
        })
        .collect();
    let found = store.entries_by_tag(&tag, None, 100).unwrap();
    assert_eq!(found, expected);
    for e in &expected {
        assert_eq!(store.entry(e.index).unwrap().as_ref(), Some(e));
    }
    assert_eq!(found.iter().filter(|e| e.payload.is_none()).count(), 4, "g1, its access, g2 and its access");
    let kept: Vec<EntryKind> = found.iter().filter(|e| e.sig.is_some()).map(|e| e.kind).collect();
    assert_eq!(
        kept,
        [
            EntryKind::EnrollPatient,
            EntryKind::Revocation,
            EntryKind::Redaction,
            EntryKind::Grant,
            EntryKind::Access,
            EntryKind::Access
        ]
    );
    let neighbours: Vec<StoredEntry> = log.entries.iter().filter(|e| e.tag == Some(other)).map(stored).collect();
    assert_eq!(store.entries_by_tag(&other, None, 100).unwrap(), neighbours, "another tag keeps its bodies");

    let g = |id: &GrantId| store.grant(id).unwrap().unwrap();
    assert!(g(&g1).redacted && g(&g2).redacted);
    assert!(!g(&g3).redacted && !g(&g_other).redacted);
    assert!(g(&g1).revoked_index.is_some(), "a redacted grant stays revoked");
    // Gateways follow revocations and redactions, in order, from any position.
    let changes: Vec<u64> = log
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Revocation | EntryKind::Redaction))
        .map(|e| e.index)
        .collect();
    let found: Vec<u64> = store.grant_changes(None, 1000).unwrap().iter().map(|e| e.index).collect();
    assert_eq!(found, changes);
    let next = store.grant_changes(Some(changes[0]), 1).unwrap();
    assert_eq!(next.iter().map(|e| e.index).collect::<Vec<_>>(), [changes[1]]);
    assert_eq!(store.grant_changes(changes.last().copied(), 10).unwrap(), []);
    // The tree still commits to every leaf.
    assert_eq!(store.read_leaves(0, log.size()).unwrap(), log.leaves);
    assert_eq!(store.tree().unwrap().root, log.frontier.root());
}

fn checkpoints_only_move_forward(log: &mut Log<'_>) {
    let store = log.store;
    let n = log.size();
    let checkpoint = || store.tree().unwrap().checkpoint;
    store.save_checkpoint(n - 2, &note(n - 2)).unwrap();
    assert_eq!(checkpoint(), Some(note(n - 2)));
    store.save_checkpoint(n - 3, &note(n - 3)).unwrap();
    assert_eq!(checkpoint(), Some(note(n - 2)), "an older checkpoint is not kept");
    store.save_checkpoint(n - 2, "another note for the same size").unwrap();
    assert_eq!(checkpoint(), Some(note(n - 2)), "nor another one of the same size");
    store.save_checkpoint(n, &note(n)).unwrap();
    assert_eq!(checkpoint(), Some(note(n)));

    // A batch's checkpoint follows the same rule.
    let mut batch = log.batch(&[access(person(1).ledger_tag())]);
    batch.checkpoint = Some(note(n + 1));
    log.commit(batch);
    assert_eq!(
        store.tree().unwrap(),
        TreeState { size: n + 1, root: log.frontier.root(), checkpoint: Some(note(n + 1)) }
    );
    let mut batch = log.batch(&[access(person(1).ledger_tag())]);
    batch.checkpoint = Some(note(n - 1));
    log.commit(batch);
    assert_eq!(
        store.tree().unwrap(),
        TreeState { size: n + 2, root: log.frontier.root(), checkpoint: Some(note(n + 1)) }
    );
}

fn mailbox(store: &dyn Store) {
    let (alice, bob) = (person(20).signing_public(), person(21).signing_public());
    let now = 1_000;
    let [a1, a2, a3] = [(1, 100), (2, 300), (3, 200)].map(|(n, sent)| mail(n, &alice, sent, 5_000));
    for m in [&a1, &a2, &a3] {
        assert!(store.mailbox_put(m, 3).unwrap());
    }
    let a4 = mail(4, &alice, 400, 5_000);
    assert!(!store.mailbox_put(&a4, 3).unwrap(), "alice already has 3 waiting");
    assert_eq!(store.mailbox_list(&alice, now, 10).unwrap(), [a1.clone(), a3.clone(), a2.clone()]);
    assert_eq!(store.mailbox_list(&alice, now, 2).unwrap(), [a1.clone(), a3.clone()]);

    // Expired messages are not listed and do not count towards the cap.
    let b_old = mail(5, &bob, 100, 500);
    let b_new = mail(6, &bob, 900, 2_000);
    assert!(store.mailbox_put(&b_old, 1).unwrap());
    assert_eq!(store.mailbox_list(&bob, 400, 10).unwrap(), slice::from_ref(&b_old));
    assert_eq!(store.mailbox_list(&bob, now, 10).unwrap(), []);
    assert!(store.mailbox_put(&b_new, 1).unwrap());
    assert_eq!(store.mailbox_list(&bob, now, 10).unwrap(), slice::from_ref(&b_new));

    // Only the recipient's message is deleted, once.
    assert!(!store.mailbox_delete(&bob, &a1.id).unwrap());
    assert!(store.mailbox_delete(&alice, &a1.id).unwrap());
    assert!(!store.mailbox_delete(&alice, &a1.id).unwrap());
    assert_eq!(store.mailbox_list(&alice, now, 10).unwrap(), [a3, a2]);
    assert!(store.mailbox_put(&a4, 3).unwrap(), "a deleted message frees its place");

    assert_eq!(store.mailbox_purge(now).unwrap(), 1);
    assert_eq!(store.mailbox_list(&bob, 400, 10).unwrap(), slice::from_ref(&b_new), "the expired message is gone");
    assert_eq!(store.mailbox_purge(now).unwrap(), 0);
    assert_eq!(store.mailbox_list(&bob, now, 10).unwrap(), [b_new]);
}

/// Two front ends over the same database: each sees the other's appends, and when both append at once
/// one of them is refused and retries on the new tree, so no batch is lost or applied twice.
fn front_ends_take_turns(first: &dyn Store, second: &dyn Store) {
    let state = first.tree().unwrap();
    assert_eq!(second.tree().unwrap(), state, "opening another front end changes nothing");
    let tag = person(1).ledger_tag();
    let stale = Log::new(first).batch(&[access(tag)]);
    Log::new(second).append(&[access(tag), access(tag)]);
    let err = first.append(&stale).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { expected, actual } if expected == state.size && actual == state.size + 2)
    );
    assert_eq!(first.tree().unwrap(), second.tree().unwrap());

    const BATCHES: usize = 20;
    let appended: Vec<Vec<Digest>> = std::thread::scope(|s| {
        let workers = [first, second].map(|store| {
            s.spawn(move || {
                let mut hashes = Vec::new();
                let mut conflicts = 0;
                for _ in 0..BATCHES {
                    loop {
                        let batch = Log::new(store).batch(&[access(tag), access(tag), access(tag)]);
                        match store.append(&batch) {
                            Ok(()) => {
                                hashes.extend(batch.entries.iter().map(|e| e.envelope_hash));
                                break;
                            }
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("append failed: {e}"),
                        }
                        assert!(conflicts < 10_000, "a front end never got its turn");
                    }
                }
                hashes
            })
        });
        workers.map(|w| w.join().unwrap()).into()
    });
    let end = first.tree().unwrap();
    assert_eq!(end.size, state.size + 2 + 2 * 3 * BATCHES as u64);
    assert_eq!(Frontier::load(end.size, &StoreHashes(second)).unwrap().root(), end.root);
    let logged: HashSet<Digest> =
        second.read_entries(0, end.size).unwrap().iter().map(|e| Leaf::parse(&e.leaf).unwrap().envelope_hash).collect();
    assert!(appended.iter().flatten().all(|h| logged.contains(h)));

    // Appending at the head: each builds on the size it holds the tree at, so no turn is lost.
    let before = first.tree().unwrap().size;
    let built_on: Vec<Vec<u64>> = std::thread::scope(|s| {
        let workers = [first, second].map(|store| {
            s.spawn(move || {
                (0..BATCHES)
                    .map(|_| {
                        let mut held = None;
                        let appended = store
                            .append_at_head(&mut |size| {
                                held = Some(size);
                                Ok(Some(Log::new(store).batch(&[access(tag), access(tag)])))
                            })
                            .unwrap()
                            .expect("a batch was built");
                        assert_eq!(Some(appended.old_size), held, "built on the size the tree was held at");
                        appended.old_size
                    })
                    .collect()
            })
        });
        workers.map(|w| w.join().unwrap()).into()
    });
    let mut sizes: Vec<u64> = built_on.concat();
    sizes.sort_unstable();
    let expected: Vec<u64> = (0..2 * BATCHES as u64).map(|i| before + 2 * i).collect();
    assert_eq!(sizes, expected, "every turn appended, one after another");
    let end = first.tree().unwrap();
    assert_eq!(Frontier::load(end.size, &StoreHashes(second)).unwrap().root(), end.root);

    // Nothing to append, or a batch made for another size: the tree is unchanged.
    assert!(first.append_at_head(&mut |_| Ok(None)).unwrap().is_none());
    let stale = Log::new(first).batch(&[access(tag)]);
    Log::new(second).append(&[access(tag)]);
    let err = first.append_at_head(&mut |_| Ok(Some(stale.clone()))).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(first.tree().unwrap(), second.tree().unwrap());
}

// ---- building batches ----

/// An entry to sequence: what it is filed under and what it changes.
struct Item {
    kind: EntryKind,
    tag: Option<Tag>,
    effect: Effect,
}

/// The log as the suite has built it: what the store must return.
struct Log<'s> {
    store: &'s dyn Store,
    frontier: Frontier,
    leaves: Vec<[u8; LEAF_LEN]>,
    /// The nodes and entries of the batches appended through this log.
    nodes: BTreeMap<NodeId, Hash>,
    entries: Vec<NewEntry>,
}

impl<'s> Log<'s> {
    /// Picks up the log where the store is.
    fn new(store: &'s dyn Store) -> Self {
        let size = store.tree().unwrap().size;
        let frontier = Frontier::load(size, &StoreHashes(store)).unwrap();
        let leaves = store.read_leaves(0, size).unwrap();
        Self { store, frontier, leaves, nodes: BTreeMap::new(), entries: Vec::new() }
    }

    fn size(&self) -> u64 {
        self.frontier.size()
    }

    fn level(&self, level: u8, range: std::ops::Range<u64>) -> Vec<Hash> {
        range.map(|index| self.nodes[&NodeId::new(level, index)]).collect()
    }

    /// The batch a sequencer would make of `items` on top of this log, without storing it.
    fn batch(&self, items: &[Item]) -> Batch {
        let mut frontier = self.frontier.clone();
        let mut nodes = Vec::new();
        let entries = items
            .iter()
            .map(|item| {
                let index = frontier.size();
                let payload = format!("entry {index}, nonce {}", EntryNonce::generate()).into_bytes();
                let leaf = Leaf::for_envelope(item.kind, 1_700_000_000_000 + index, &payload);
                frontier.push_into(leaf_hash(&leaf.to_bytes()), &mut nodes);
                let mut effect = item.effect.clone();
                if let Effect::Member(m) = &mut effect {
                    m.index = index;
                }
                NewEntry {
                    index,
                    kind: item.kind,
                    tag: item.tag,
                    leaf: leaf.to_bytes(),
                    envelope_hash: leaf.envelope_hash,
                    payload,
                    sig: [index as u8; 64],
                    effect,
                }
            })
            .collect();
        Batch {
            old_size: self.size(),
            new_size: frontier.size(),
            new_root: frontier.root(),
            entries,
            nodes,
            checkpoint: None,
        }
    }

    /// Stores `batch`, which must succeed, and records it.
    fn commit(&mut self, batch: Batch) -> Vec<NewEntry> {
        self.store.append(&batch).unwrap();
        for e in &batch.entries {
            self.frontier.push(leaf_hash(&e.leaf));
            self.leaves.push(e.leaf);
        }
        self.nodes.extend(batch.nodes);
        self.entries.extend(batch.entries.iter().cloned());
        batch.entries
    }

    fn append(&mut self, items: &[Item]) -> Vec<NewEntry> {
        self.commit(self.batch(items))
    }
}

fn stored(e: &NewEntry) -> StoredEntry {
    StoredEntry { index: e.index, kind: e.kind, leaf: e.leaf, payload: Some(e.payload.clone()), sig: Some(e.sig) }
}

fn person(n: u8) -> Identity {
    Identity::from_seed(&MasterSeed::from_bytes([n; 32]))
}

fn enroll(patient: &Identity) -> Item {
    let tag = patient.ledger_tag();
    Item {
        kind: EntryKind::EnrollPatient,
        tag: Some(tag),
        effect: Effect::Patient { key: patient.signing_public(), box_key: patient.box_public(), tag },
    }
}

/// Enrolls `person(n)` as a member.
fn member(n: u8, role: Role) -> Item {
    let who = person(n);
    Item {
        kind: EntryKind::EnrollMember,
        tag: None,
        effect: Effect::Member(MemberRecord {
            key: who.signing_public(),
            box_key: who.box_public(),
            role,
            name: format!("Member {n}"),
            org: format!("Clinic {n}"),
            index: 0,
        }),
    }
}

fn grant_digest(id: GrantId) -> Digest {
    Digest::of(id.as_bytes())
}

fn grant(patient: &Identity, grant_id: GrantId) -> Item {
    let tag = patient.ledger_tag();
    Item {
        kind: EntryKind::Grant,
        tag: Some(tag),
        effect: Effect::Grant { grant_id, owner: patient.signing_public(), tag, digest: grant_digest(grant_id) },
    }
}

fn revoke(patient: &Identity, grant_id: GrantId) -> Item {
    Item { kind: EntryKind::Revocation, tag: Some(patient.ledger_tag()), effect: Effect::Revocation { grant_id } }
}

fn access(tag: Tag) -> Item {
    Item { kind: EntryKind::Access, tag: Some(tag), effect: Effect::None }
}

fn redact(tag: Tag) -> Item {
    Item { kind: EntryKind::Redaction, tag: Some(tag), effect: Effect::Redaction { tag } }
}

/// A signed checkpoint's text as far as a store reads it: the size is its second line.
fn note(size: u64) -> String {
    format!("custodia.test/ledger\n{size}\nroot-{size}\n\n— custodia.test/ledger sig-{size}\n")
}

fn mail(n: u8, recipient: &SigningPublicKey, sent_at: i64, expires_at: i64) -> MailMessage {
    MailMessage {
        id: [n; 16],
        recipient: *recipient,
        sender: person(30).signing_public(),
        sent_at,
        expires_at,
        body: format!("sealed message {n}").into_bytes(),
    }
}
