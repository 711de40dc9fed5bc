//! Access requests and emergency cards.
//!
//! A clinician's or emergency room's wallet signs a request ([`Wallet::create_access_request`]), shows it as
//! a QR code, and later collects the patient's answer from its mailbox on the ledger
//! ([`Wallet::collect_answers`]). The patient's wallet checks a scanned request against the ledger's
//! enrollment of the requester ([`Wallet::check_access_request`]) and answers it
//! ([`Wallet::answer_access_request`]): an approval is an ordinary grant, posted, and sent to the requester
//! sealed. An emergency card ([`Wallet::create_emergency_card`]) is a standing break-glass grant to a key
//! that only the card holds; [`open_card_grant`] is how an emergency provider reads it back off the ledger.

use std::collections::BTreeSet;

use custodia_core::access_request::{ANSWER_AAD, AccessAnswer, AccessRequest, SignedAccessRequest};
use custodia_core::entry::{Content, EntryKind, EntryNonce, LedgerEntry, Role, open_statement, statement_digest};
use custodia_core::grant::{GrantId, GrantRequest, UnverifiedGrant, VerifiedGrant};
use custodia_core::labels::SensitivityLabel;
use custodia_core::purpose::PurposeOfUse;
use custodia_core::qr::{EmergencyCard, QrPayload};
use custodia_core::scope::Scope;
use custodia_core::seal;
use custodia_core::statement::Unverified;
use custodia_core::time::Timestamp;
use custodia_core::{Identity, SigningPublicKey};
use serde::{Deserialize, Serialize};

use super::{Wallet, WalletError};
use crate::ledger::{Ledger, LedgerClient, LedgerError, Member, normalise_url};

/// Requests a wallet remembers; older ones are dropped first.
const MAX_OPEN_REQUESTS: usize = 50;
/// Grants received that a wallet keeps; older ones are dropped first.
const MAX_RECEIVED: usize = 500;
/// How long an answer waits in the requester's mailbox.
const ANSWER_TTL_SECONDS: u64 = 3600;

/// What a clinician's or emergency room's wallet keeps: the requests it showed, and the grants patients
/// gave it. Stored in the vault as the signed texts, and checked again on every unlock.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CareState {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    requests: Vec<StoredRequest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    received: Vec<StoredReceived>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredRequest {
    /// The QR code's text.
    text: String,
    #[serde(default)]
    answered: bool,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredReceived {
    /// The signed grant's JSON.
    grant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<EntryNonce>,
    received_at: Timestamp,
}

fn parse_request(text: &str) -> Option<SignedAccessRequest> {
    match QrPayload::decode(text) {
        Ok(QrPayload::AccessRequest(r)) => Some(r),
        _ => None,
    }
}

impl CareState {
    pub(crate) fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.received.is_empty()
    }

    /// What the vault holds, checked as if heard anew: requests are this wallet's, grants are to it.
    pub(crate) fn checked(self, me: &SigningPublicKey) -> Result<Self, WalletError> {
        for r in &self.requests {
            if parse_request(&r.text).is_none_or(|r| r.claimed().requester != *me) {
                return Err(WalletError::Corrupt("a stored access request is not this wallet's".into()));
            }
        }
        for g in &self.received {
            verify_received(&g.grant, me)
                .map_err(|e| WalletError::Corrupt(format!("a received grant does not verify: {e}")))?;
        }
        Ok(self)
    }
}

fn verify_received(json: &str, me: &SigningPublicKey) -> Result<VerifiedGrant, WalletError> {
    let grant = UnverifiedGrant::decode(json.as_bytes())?.verify()?;
    if grant.grantee != *me {
        return Err(WalletError::NotForThisWallet(grant.id));
    }
    Ok(grant)
}

/// A grant a patient gave this wallet.
#[derive(Clone, Debug)]
pub struct ReceivedGrant {
    pub grant: VerifiedGrant,
    /// The request it answered, if it answered one.
    pub request: Option<EntryNonce>,
    pub received_at: Timestamp,
}

/// A patient's answer, as collected from the mailbox.
#[derive(Clone, Debug)]
pub enum AnswerReceived {
    Approved { request: EntryNonce, grant: Box<VerifiedGrant> },
    Declined { request: EntryNonce },
}

/// A scanned request whose signature, time and requester the patient's wallet checked: `requester` is the
/// ledger's enrollment, which is what the patient is shown.
#[derive(Clone, Debug)]
pub struct CheckedRequest {
    pub request: AccessRequest,
    pub requester: Member,
}

/// Scopes a patient approves must be among those asked for: narrowing, never widening.
fn check_narrowing(asked: &AccessRequest, scopes: &[Scope], duration_seconds: u32) -> Result<(), WalletError> {
    if scopes.is_empty() {
        return Err(WalletError::BadAnswer("approve at least one of the asked scopes, or decline".into()));
    }
    if let Some(extra) = scopes.iter().find(|s| !asked.scopes.contains(s)) {
        return Err(WalletError::BadAnswer(format!("{extra} was not asked for; an answer can only narrow a request")));
    }
    if duration_seconds == 0 || duration_seconds > asked.duration_seconds {
        return Err(WalletError::BadAnswer(format!(
            "the duration must be 1 to {} seconds, as asked or shorter",
            asked.duration_seconds
        )));
    }
    Ok(())
}

impl Wallet {
    /// As a clinician or emergency room enrolled (as a provider or emergency provider) on the ledger at
    /// `ledger_url`: signs a request for access, and remembers it so the answer can be matched.
    pub fn create_access_request(
        &mut self,
        ledger_url: &str,
        scopes: Vec<Scope>,
        purpose: PurposeOfUse,
        duration_seconds: u32,
        now: Timestamp,
    ) -> Result<SignedAccessRequest, WalletError> {
        let url = normalise_url(ledger_url)?;
        let (mut ledger, _) = Ledger::connect(&url, None)?;
        let me = ledger.member(&self.identity.signing_public())?;
        if !matches!(me.role, Role::Provider | Role::Emergency) {
            return Err(WalletError::RequesterRole(me.role));
        }
        let signed = AccessRequest::new(&self.identity, scopes, purpose, duration_seconds, url, now)
            .sign(&self.identity)
            .map_err(WalletError::Request)?;
        let old = self.care.clone();
        self.care
            .requests
            .push(StoredRequest { text: QrPayload::AccessRequest(signed.clone()).encode(), answered: false });
        let excess = self.care.requests.len().saturating_sub(MAX_OPEN_REQUESTS);
        self.care.requests.drain(..excess);
        if let Err(e) = self.save() {
            self.care = old;
            return Err(e);
        }
        Ok(signed)
    }

    /// The requests this wallet showed and has no answer to yet, newest last.
    pub fn open_requests(&self) -> Vec<SignedAccessRequest> {
        self.care.requests.iter().filter(|r| !r.answered).filter_map(|r| parse_request(&r.text)).collect()
    }

    /// Fetches the answers waiting in this wallet's mailbox at the ledgers of its open requests. Each
    /// approval must be a grant from the answering patient to this wallet, for what was asked or less; it is
    /// kept, and the message deleted. Messages that are not answers to this wallet's requests are left.
    pub fn collect_answers(&mut self, now: Timestamp) -> Result<Vec<AnswerReceived>, WalletError> {
        let open = self.open_requests();
        let ledgers: BTreeSet<&str> = open.iter().map(|r| r.claimed().ledger.as_str()).collect();
        let me = self.identity.signing_public();
        let mut answers = Vec::new();
        let mut care = self.care.clone();
        let mut done = Vec::new();
        for url in ledgers {
            let client = LedgerClient::new(url)?;
            for mail in client.mail_list(&self.identity)?.messages {
                let Ok(sealed) = data_encoding::BASE64.decode(mail.body.as_bytes()) else { continue };
                let Ok(plain) = seal::open(&self.identity, ANSWER_AAD, &sealed) else { continue };
                let Ok(answer) = serde_json::from_slice::<AccessAnswer>(&plain) else { continue };
                let Some(asked) = open.iter().map(SignedAccessRequest::claimed).find(|r| r.id == answer.request) else {
                    continue;
                };
                let received = match &answer.grant {
                    None => AnswerReceived::Declined { request: answer.request },
                    Some(json) => {
                        let grant = verify_received(json, &me)?;
                        let as_asked = grant.patient == mail.from
                            && grant.purpose == asked.purpose
                            && !grant.emergency_card
                            && grant.scopes.iter().all(|s| asked.scopes.contains(s))
                            && grant.not_after.seconds_since(grant.not_before) <= i64::from(asked.duration_seconds);
                        if !as_asked {
                            return Err(WalletError::BadAnswer(format!(
                                "grant {} from {} is not what request {} asked for",
                                grant.id, mail.from, asked.id
                            )));
                        }
                        care.received.push(StoredReceived {
                            grant: json.clone(),
                            request: Some(asked.id),
                            received_at: now,
                        });
                        AnswerReceived::Approved { request: asked.id, grant: Box::new(grant) }
                    }
                };
                for r in care.requests.iter_mut() {
                    if parse_request(&r.text).is_some_and(|s| s.claimed().id == answer.request) {
                        r.answered = true;
                    }
                }
                answers.push(received);
                done.push((url.to_owned(), mail.id));
            }
        }
        if answers.is_empty() {
            return Ok(answers);
        }
        let excess = care.received.len().saturating_sub(MAX_RECEIVED);
        care.received.drain(..excess);
        let old = std::mem::replace(&mut self.care, care);
        if let Err(e) = self.save() {
            self.care = old;
            return Err(e);
        }
        // Deleted only once kept: a crash in between leaves the answer to be collected again.
        for (url, id) in done {
            LedgerClient::new(&url)?.mail_delete(&self.identity, &id)?;
        }
        Ok(answers)
    }

    /// The grants patients gave this wallet, newest last.
    pub fn received_grants(&self) -> Vec<ReceivedGrant> {
        let me = self.identity.signing_public();
        self.care
            .received
            .iter()
            .filter_map(|r| {
                let grant = verify_received(&r.grant, &me).ok()?;
                Some(ReceivedGrant { grant, request: r.request, received_at: r.received_at })
            })
            .collect()
    }

    /// One grant a patient gave this wallet.
    pub fn received_grant(&self, id: GrantId) -> Result<VerifiedGrant, WalletError> {
        self.received_grants()
            .into_iter()
            .rev()
            .find(|r| r.grant.id == id)
            .map(|r| r.grant)
            .ok_or(WalletError::UnknownGrant(id))
    }

    /// As a patient: verifies a scanned request (signature, time), checks that it is for this wallet's
    /// ledger and that the requester is enrolled there as a provider or emergency provider.
    pub fn check_access_request(
        &mut self,
        signed: &SignedAccessRequest,
        now: Timestamp,
    ) -> Result<CheckedRequest, WalletError> {
        let request = signed.verify(now).map_err(WalletError::Request)?.clone();
        let (mut ledger, mut link) = self.session()?;
        let asked = normalise_url(&request.ledger)?;
        if asked != link.url {
            return Err(WalletError::RequestElsewhere { asked, mine: link.url.clone() });
        }
        let requester = match Self::member_in(&mut ledger, &mut link, &request.requester) {
            Err(LedgerError::NotAMember(key)) => return Err(WalletError::RequesterNotEnrolled(key)),
            other => other?,
        };
        if !matches!(requester.role, Role::Provider | Role::Emergency) {
            return Err(WalletError::RequesterRole(requester.role));
        }
        self.commit(link, &ledger, None)?;
        Ok(CheckedRequest { request, requester })
    }

    /// As a patient: answers a checked request. With `approval` (the scopes and duration approved, as asked
    /// or narrower) it signs a grant, posts it and sends it to the requester; without, it tells the requester
    /// the patient declined. Returns the grant.
    pub fn answer_access_request(
        &mut self,
        checked: &CheckedRequest,
        approval: Option<(Vec<Scope>, u32)>,
        now: Timestamp,
    ) -> Result<Option<VerifiedGrant>, WalletError> {
        let asked = &checked.request;
        let grant = match approval {
            None => None,
            Some((scopes, duration_seconds)) => {
                check_narrowing(asked, &scopes, duration_seconds)?;
                let who = format!("Asked for by {}, {}", checked.requester.name, checked.requester.org);
                let grant = self.issue_grant(
                    GrantRequest {
                        grantee: asked.requester,
                        scopes,
                        allowed_labels: Vec::new(),
                        purpose: asked.purpose,
                        duration_seconds: u64::from(duration_seconds),
                        max_reads: None,
                        note: who.chars().take(custodia_core::grant::MAX_NOTE_CHARS).collect(),
                    },
                    now,
                )?;
                self.post_grant(grant.id, now)?;
                Some(grant)
            }
        };
        let answer = AccessAnswer { request: asked.id, grant: grant.as_ref().map(|g| g.to_json()) };
        let plain = serde_json::to_vec(&answer).map_err(|e| WalletError::Corrupt(e.to_string()))?;
        let sealed = seal::seal(&checked.requester.box_key, ANSWER_AAD, &plain).map_err(LedgerError::from)?;
        let (ledger, _) = self.session()?;
        ledger.client().mail_post(&self.identity, &asked.requester, ANSWER_TTL_SECONDS, &sealed)?;
        Ok(grant)
    }

    /// As a patient: makes an emergency card, a standing break-glass grant (purpose ETREAT) to a key only
    /// the card holds, for `scopes` and `labels` the patient chose, and posts the grant. The returned card
    /// is the only copy of its secret: print it.
    pub fn create_emergency_card(
        &mut self,
        scopes: Vec<Scope>,
        labels: Vec<SensitivityLabel>,
        duration_seconds: u64,
        now: Timestamp,
    ) -> Result<(EmergencyCard, VerifiedGrant, u64), WalletError> {
        let url = self.ledger.as_ref().ok_or(WalletError::NotEnrolled)?.url.clone();
        let id = GrantId::generate();
        let card = EmergencyCard::generate(id, url).map_err(|e| WalletError::BadAnswer(e.to_string()))?;
        let card_identity = card.identity();
        let grant = GrantRequest {
            grantee: card_identity.signing_public(),
            scopes,
            allowed_labels: labels,
            purpose: PurposeOfUse::EMERGENCY_TREATMENT,
            duration_seconds,
            max_reads: None,
            note: "Emergency card".into(),
        }
        .sign_emergency_card(&self.identity, id, now)?;
        let grant = self.keep_issued(grant, Some(card_identity.box_public()))?;
        let index = match self.post_grant(grant.id, now) {
            Ok(index) => index,
            Err(e) => {
                // The card (its secret) is never returned, so a grant not on the ledger could never be used
                // or revoked by anyone: forget it rather than leave it to be posted later.
                if let Some(position) =
                    self.grants.iter().position(|g| g.grant.id == grant.id && g.grant_index.is_none())
                {
                    let kept = self.grants.remove(position);
                    if self.save().is_err() {
                        self.grants.insert(position, kept);
                    }
                }
                return Err(e);
            }
        };
        Ok((card, grant, index))
    }
}

/// As an enrolled emergency provider holding a patient's emergency card: fetches the card's grant entry
/// from the ledger (a request signed by `provider`), opens its sealed body with the card's key and checks
/// that it is the patient's signed emergency-card grant to that key, matching the entry's published id and
/// digest.
pub fn open_card_grant(
    client: &LedgerClient,
    provider: &Identity,
    card: &EmergencyCard,
) -> Result<VerifiedGrant, WalletError> {
    let fetched = client.grant_entry(provider, &card.grant_id)?;
    let bad = |reason: String| WalletError::Ledger(LedgerError::BadEntry { index: fetched.index, reason });
    let entry = Unverified::<LedgerEntry>::decode(fetched.envelope.get().as_bytes())
        .and_then(Unverified::verify)
        .map_err(|e| bad(format!("the grant's entry: {e}")))?;
    let Content::Grant { tag, grant_id, grant_digest, body } = &entry.content else {
        return Err(bad("it is not a grant entry".into()));
    };
    let card_key = card.identity();
    let grant = open_statement::<custodia_core::grant::Grant>(&card_key, EntryKind::Grant, tag, body)
        .map_err(|e| bad(format!("the card's key does not open it: {e}")))?
        .verify_signed_by(&entry.signer)
        .map_err(|e| bad(format!("the grant inside: {e}")))?;
    if grant.id != card.grant_id || *grant_id != card.grant_id {
        return Err(bad(format!("it holds grant {}, the card names {}", grant.id, card.grant_id)));
    }
    if statement_digest(grant.envelope()) != *grant_digest {
        return Err(bad("the published digest is not the sealed grant's".into()));
    }
    if !grant.emergency_card || grant.grantee != card_key.signing_public() {
        return Err(bad("it is not an emergency card's grant to this card".into()));
    }
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_may_narrow_but_never_widen() {
        let er = Identity::from_seed(&custodia_core::MasterSeed::generate());
        let scope = |s: &str| s.parse::<Scope>().unwrap();
        let asked = AccessRequest::new(
            &er,
            vec![scope("patient/AllergyIntolerance.rs"), scope("patient/Condition.rs")],
            PurposeOfUse::EMERGENCY_TREATMENT,
            3600,
            "http://127.0.0.1:1".into(),
            Timestamp::from_unix(1_800_000_000).unwrap(),
        );
        check_narrowing(&asked, &[scope("patient/Condition.rs")], 1800).unwrap();
        assert!(check_narrowing(&asked, &[], 1800).is_err());
        assert!(check_narrowing(&asked, &[scope("patient/Observation.rs")], 1800).is_err());
        assert!(check_narrowing(&asked, &[scope("patient/Condition.rs")], 3601).is_err());
    }
}
