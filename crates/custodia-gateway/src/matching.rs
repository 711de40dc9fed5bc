//! From a grant's patient key to the hospital's Patient: the link made at registration, found again after
//! the patient rotated keys (by their rotations on the ledger), and a record number looked up with
//! `Patient?identifier=`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use custodia_core::SigningPublicKey;
use custodia_wallet::LedgerError;

use crate::Shared;
use crate::links::Target;

/// How long a key found (or found unlinked) through the ledger's rotations is remembered.
const CHAIN_TTL: Duration = Duration::from_secs(60);
/// How long a record number's Patient id is remembered.
const IDENTIFIER_TTL: Duration = Duration::from_secs(300);
const MAX_REMEMBERED: usize = 100_000;

/// Why no Patient was found.
#[derive(Debug)]
pub enum Unmatched {
    /// Neither the key nor any earlier key of the patient is linked, or the linked record is not there.
    NotLinked(String),
    /// The ledger or the upstream could not be asked; worth trying again.
    Unavailable(String),
}

#[derive(Default)]
pub struct Matcher {
    /// Keys not linked themselves → the link of an earlier key of the same patient (or none).
    chains: Mutex<HashMap<SigningPublicKey, (Instant, Option<Target>)>>,
    identifiers: Mutex<HashMap<Target, (Instant, String)>>,
    /// Keys → whether each is its patient's current key (`None`: no patient's).
    current: Mutex<HashMap<SigningPublicKey, (Instant, Option<bool>)>>,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Matcher")
    }
}

fn remember<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, (Instant, V)>>, key: K, value: V) {
    if let Ok(mut map) = map.lock() {
        crate::guard::insert_capped(&mut map, key, (Instant::now(), value), MAX_REMEMBERED);
    }
}

fn recall<K: std::hash::Hash + Eq, V: Clone>(
    map: &Mutex<HashMap<K, (Instant, V)>>,
    key: &K,
    ttl: Duration,
) -> Option<V> {
    let map = map.lock().ok()?;
    let (at, value) = map.get(key)?;
    (at.elapsed() < ttl).then(|| value.clone())
}

/// The Patient id of the grant's patient at this hospital.
pub async fn patient_id(shared: &std::sync::Arc<Shared>, patient: SigningPublicKey) -> Result<String, Unmatched> {
    let target = match shared.links.target(&patient) {
        Some(t) => t,
        None => linked_earlier(shared, patient)
            .await?
            .ok_or_else(|| Unmatched::NotLinked("this gateway holds no records of the grant's patient".into()))?,
    };
    match target {
        Target::FhirId(id) => Ok(id),
        Target::Identifier { .. } => by_identifier(shared, target).await,
    }
}

/// The link of one of the patient's earlier keys, as the ledger's verified rotations name them.
async fn linked_earlier(
    shared: &std::sync::Arc<Shared>,
    patient: SigningPublicKey,
) -> Result<Option<Target>, Unmatched> {
    if let Some(found) = recall(&shared.matcher.chains, &patient, CHAIN_TTL) {
        return Ok(found);
    }
    let keys = patient_keys(shared, patient).await?.unwrap_or_default();
    let found = keys.iter().find_map(|k| shared.links.target(k));
    remember(&shared.matcher.chains, patient, found.clone());
    Ok(found)
}

/// The keys of the patient who has (or had) `key`, newest first, from the ledger's verified rotations;
/// `None` when no patient on the ledger has it.
async fn patient_keys(
    shared: &std::sync::Arc<Shared>,
    key: SigningPublicKey,
) -> Result<Option<Vec<SigningPublicKey>>, Unmatched> {
    let asking = shared.clone();
    let view = tokio::task::spawn_blocking(move || {
        let mut ledger = asking.verifying.lock().map_err(|_| LedgerError::Audit("a lock is poisoned".into()))?;
        ledger.recovery(&asking.identity, &key)
    })
    .await
    .map_err(|e| Unmatched::Unavailable(e.to_string()))?;
    match view {
        Ok(view) => Ok(Some(view.keys)),
        Err(LedgerError::Problem { status: 404, .. }) => Ok(None),
        Err(e) if e.is_verification_failure() => {
            Err(Unmatched::Unavailable(format!("the ledger's record of the patient's keys failed: {e}")))
        }
        Err(e) => Err(Unmatched::Unavailable(format!("the ledger could not be reached: {e}"))),
    }
}

/// Whether `key` is a patient's current key, as the ledger's verified rotations say: `None` when no
/// patient on the ledger has it, `Some(false)` when it was rotated away. Remembered for [`CHAIN_TTL`].
pub async fn is_current_key(shared: &std::sync::Arc<Shared>, key: SigningPublicKey) -> Result<Option<bool>, String> {
    if let Some(known) = recall(&shared.matcher.current, &key, CHAIN_TTL) {
        return Ok(known);
    }
    let keys = patient_keys(shared, key).await.map_err(|e| match e {
        Unmatched::NotLinked(why) | Unmatched::Unavailable(why) => why,
    })?;
    // Newest first: the current key, then those rotated away.
    let current = keys.map(|keys| keys.first().is_none_or(|k| *k == key));
    remember(&shared.matcher.current, key, current);
    Ok(current)
}

async fn by_identifier(shared: &Shared, target: Target) -> Result<String, Unmatched> {
    if let Some(id) = recall(&shared.matcher.identifiers, &target, IDENTIFIER_TTL) {
        return Ok(id);
    }
    let Target::Identifier { system, value } = &target else { return Err(Unmatched::NotLinked(String::new())) };
    let found = shared
        .records
        .patients_with_identifier(system.as_deref(), value)
        .await
        .map_err(|e| Unmatched::Unavailable(e.to_string()))?;
    match found.as_slice() {
        [id] => {
            remember(&shared.matcher.identifiers, target.clone(), id.clone());
            Ok(id.clone())
        }
        [] => Err(Unmatched::NotLinked(format!("the patient is linked to {target}, and no such Patient is here"))),
        _ => Err(Unmatched::NotLinked(format!(
            "the patient is linked to {target}, which {} Patients carry: the link must name one",
            found.len()
        ))),
    }
}
