//! The patient's side of social recovery: choosing, checking and removing guardians (each change
//! rotates the seed first), and the old device's veto.

use super::*;

impl Wallet {
    /// The patient's current guardian set, if any.
    pub fn guardian_set(&self) -> Option<GuardianSetView> {
        let s = self.guardians.setup.as_ref()?;
        Some(GuardianSetView {
            set_id: s.set_id,
            threshold: s.threshold,
            count: s.count,
            waiting_seconds: s.waiting_seconds,
            created_at: s.created_at,
            entry_index: s.entry_index,
            challenged_at: s.challenge.map(|(_, at)| at),
            guardians: s
                .guardians
                .iter()
                .map(|g| GuardianView {
                    index: g.mailbox.index,
                    name: g.name.clone(),
                    key: g.key,
                    accepted_at: g.accepted_at,
                    proved_at: g.proved_at,
                })
                .collect(),
        })
    }

    /// Recovery requests filed under this wallet's tag since its last key rotation, newest last.
    pub fn recovery_alerts(&self) -> &[RecoveryAlert] {
        &self.guardians.alerts
    }

    /// Set when another device recovered this wallet and retired its key.
    pub fn retired(&self) -> Option<&Retired> {
        self.guardians.retired.as_ref()
    }

    fn check_not_retired(&self) -> Result<(), WalletError> {
        match &self.guardians.retired {
            Some(r) => Err(WalletError::Retired { index: r.index, successor: r.successor.to_string() }),
            None => Ok(()),
        }
    }

    /// A guardian named by key alone: an enrolled member (checked against the authority's enrollment), or
    /// an enrolled patient as the ledger records them. A scanned contact card is the stronger way: it
    /// carries the keys as the guardian's own wallet shows them.
    pub fn guardian_contact(&mut self, key: &SigningPublicKey) -> Result<GuardianContact, WalletError> {
        match self.member(key) {
            Ok(m) => return Ok(GuardianContact { name: m.name, key: *key, box_key: m.box_key }),
            Err(WalletError::Ledger(LedgerError::NotAMember(_))) => {}
            Err(e) => return Err(e),
        }
        let (mut ledger, link) = self.session()?;
        let view = match ledger.recovery(&self.identity, key) {
            Err(LedgerError::Problem { code, .. }) if code == "not-found" => {
                return Err(WalletError::NotAPatient(key.to_string()));
            }
            other => other?,
        };
        self.commit(link, &ledger, None)?;
        if view.patient.key != *key {
            return Err(WalletError::Guardians(format!(
                "{key} was rotated to {}; ask the guardian for their current contact card",
                view.patient.key
            )));
        }
        let short: String = key.to_string().chars().take(14).collect();
        Ok(GuardianContact { name: format!("Guardian {short}…"), key: *key, box_key: view.patient.box_key })
    }

    /// A guardian as a person names them: by the text of their contact-card QR code (the stronger way,
    /// its keys as the guardian's own wallet shows them) or by a signing key, looked up on the ledger.
    /// Says whether it came from a card. The app and the CLI both take guardians this way.
    pub fn guardian_contact_from(&mut self, given: &str) -> Result<(GuardianContact, bool), WalletError> {
        let text = given.trim();
        let (contact, from_card) = match text.parse::<SigningPublicKey>() {
            Ok(key) => (self.guardian_contact(&key)?, false),
            Err(_) => match QrPayload::decode(text) {
                Ok(QrPayload::Contact(card)) => (GuardianContact::from(card), true),
                Ok(_) => return Err(WalletError::Guardians("that Custodia QR code is not a contact card".into())),
                Err(e) => {
                    return Err(WalletError::Guardians(format!(
                        "that is neither a contact card nor a Custodia key: {e}"
                    )));
                }
            },
        };
        if contact.key == self.signing_key() {
            return Err(WalletError::Guardians(
                "that is this wallet's own contact card: you cannot be your own guardian".into(),
            ));
        }
        Ok((contact, from_card))
    }

    /// Names `guardians` (2 to 10) of whom any `threshold` can recover this wallet, and delivers their
    /// shares. If the wallet already has guardians the seed is rotated first, so every share of the old
    /// set becomes worthless, and the new set supersedes the old one on the ledger.
    pub fn set_guardians(
        &mut self,
        guardians: Vec<GuardianContact>,
        threshold: u8,
        waiting_seconds: u64,
        now: Timestamp,
    ) -> Result<GuardianSetView, WalletError> {
        self.check_not_retired()?;
        let n = guardians.len();
        if !(usize::from(recovery::MIN_GUARDIANS)..=usize::from(recovery::MAX_GUARDIANS)).contains(&n) {
            return Err(WalletError::Guardians(format!(
                "choose {} to {} guardians; {n} given",
                recovery::MIN_GUARDIANS,
                recovery::MAX_GUARDIANS
            )));
        }
        let count = u8::try_from(n).unwrap_or(u8::MAX);
        if !(2..=count).contains(&threshold) {
            return Err(WalletError::Guardians(format!(
                "the threshold must be 2 to {count} for {count} guardians; {threshold} given"
            )));
        }
        if waiting_seconds > recovery::MAX_WAITING_SECONDS {
            return Err(WalletError::Guardians(format!(
                "the waiting period may be at most {} days",
                recovery::MAX_WAITING_SECONDS / 86_400
            )));
        }
        let mut seen = BTreeSet::new();
        for g in &guardians {
            if g.key == self.signing_key() {
                return Err(WalletError::Guardians("a wallet cannot be its own guardian".into()));
            }
            if !seen.insert(g.key.to_string()) {
                return Err(WalletError::Guardians(format!("{} ({}) is named twice", g.name, g.key)));
            }
        }
        let (mut ledger, link) = self.session()?;
        let supersedes = self.guardians.setup.as_ref().map(|s| s.set_id);
        if supersedes.is_some() {
            self.rotate(&mut ledger, now)?;
        }
        self.split_and_deliver(&mut ledger, &link, &guardians, threshold, waiting_seconds, supersedes, now)?;
        self.commit(link, &ledger, None)?;
        self.guardian_set().ok_or_else(|| WalletError::Corrupt("the guardian set just made is gone".into()))
    }

    /// Removes one guardian: the seed is rotated and re-split among the others (the threshold is kept
    /// unless fewer guardians remain than it needs).
    pub fn remove_guardian(&mut self, key: &SigningPublicKey, now: Timestamp) -> Result<GuardianSetView, WalletError> {
        let setup = self.guardians.setup.clone().ok_or(WalletError::NoGuardians)?;
        if !setup.guardians.iter().any(|g| g.key == *key) {
            return Err(WalletError::UnknownGuardian(key.to_string()));
        }
        let rest: Vec<GuardianContact> = setup
            .guardians
            .iter()
            .filter(|g| g.key != *key)
            .map(|g| GuardianContact { name: g.name.clone(), key: g.key, box_key: g.box_key })
            .collect();
        if rest.len() < usize::from(recovery::MIN_GUARDIANS) {
            return Err(WalletError::Guardians(format!(
                "a wallet needs at least {} guardians; add another before removing this one",
                recovery::MIN_GUARDIANS
            )));
        }
        let threshold = setup.threshold.min(u8::try_from(rest.len()).unwrap_or(u8::MAX));
        self.set_guardians(rest, threshold, setup.waiting_seconds, now)
    }

    /// Hands this wallet's record on to a fresh seed: a key rotation signed by the current key, carrying
    /// the seeds held so far sealed to the new key. The new seed is written to the vault before the
    /// rotation is posted, so a crash in between loses nothing ([`Wallet::settle_rotation`] finishes it).
    pub(super) fn rotate(&mut self, ledger: &mut Ledger, now: Timestamp) -> Result<(), WalletError> {
        let tag = self.identity.ledger_tag();
        let next = MasterSeed::generate();
        let next_identity = Identity::from_seed(&next).with_ledger_tag(tag);
        let mut formers: Vec<&MasterSeed> = vec![&self.seed];
        formers.extend(self.former.iter());
        formers.truncate(recovery::MAX_FORMER_SEEDS);
        let body = recovery::seal_former_seeds(&next_identity.box_public(), &tag, &formers)
            .map_err(|e| WalletError::Corrupt(e.to_string()))?;
        let content = Content::KeyRotation {
            tag,
            new_key: next_identity.signing_public(),
            new_box_key: next_identity.box_public(),
            body,
        };
        let entry = statement::sign(LedgerEntry::new(self.signing_key(), now, content), &self.identity)?;
        self.pending_seed = Some(copy_seed(&next));
        self.save()?;
        match ledger.append_one(entry) {
            Ok(_) => self.adopt_seed(next),
            Err(e) => {
                // A refusal is final: forget the new seed. Anything else (a timeout) may have landed;
                // the pending seed stays for the next sync to settle.
                if matches!(e, LedgerError::Problem { .. }) {
                    self.pending_seed = None;
                    self.save()?;
                }
                Err(e.into())
            }
        }
    }

    /// Makes `next` the wallet's seed, keeping the current one to open older entries.
    fn adopt_seed(&mut self, next: MasterSeed) -> Result<(), WalletError> {
        let tag = self.identity.ledger_tag();
        let old = std::mem::replace(&mut self.seed, next);
        self.former.insert(0, old);
        self.former.truncate(recovery::MAX_FORMER_SEEDS);
        self.identity = Identity::from_seed(&self.seed).with_ledger_tag(tag);
        self.tag = Some(tag);
        self.pending_seed = None;
        self.save()
    }

    /// Finishes a rotation whose outcome was unknown: adopts the pending seed if the ledger moved the
    /// record to it, forgets it if the ledger still names the current key.
    pub(in crate::wallet) fn settle_rotation(&mut self, ledger: &mut Ledger) -> Result<(), WalletError> {
        let Some(pending) = self.pending_seed.as_ref().map(copy_seed) else { return Ok(()) };
        let pending_key = Identity::from_seed(&pending).signing_public();
        let view = ledger.recovery(&self.identity, &self.signing_key())?;
        if view.patient.key == pending_key {
            self.adopt_seed(pending)
        } else {
            self.pending_seed = None;
            self.save()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn split_and_deliver(
        &mut self,
        ledger: &mut Ledger,
        link: &LedgerLink,
        guardians: &[GuardianContact],
        threshold: u8,
        waiting_seconds: u64,
        supersedes: Option<SetId>,
        now: Timestamp,
    ) -> Result<(), WalletError> {
        let count = u8::try_from(guardians.len()).unwrap_or(u8::MAX);
        let shares = shamir::split(&self.seed, threshold, count).map_err(WalletError::Shares)?;
        let Some(first) = shares.first() else { return Err(WalletError::Guardians("no shares".into())) };
        let set_id = SetId::from_bytes(*first.set_id());
        let tag = self.identity.ledger_tag();
        let me = self.signing_key();
        // Shares go out first: a set on the ledger whose shares never arrived would promise a recovery
        // that cannot happen.
        for (g, share) in guardians.iter().zip(&shares) {
            let offer = MailBody::ShareOffer {
                ledger: link.url.clone(),
                tag,
                patient_box: self.identity.box_public(),
                patient_name: self.name.clone(),
                set_id,
                index: share.index(),
                threshold,
                count,
                waiting_seconds,
                share_digest: share_digest(share),
            };
            let sealed = seal_mail(&self.identity, &g.key, &g.box_key, offer, Some(share), now)
                .map_err(|e| WalletError::Corrupt(e.to_string()))?;
            ledger.client().mail_post(&self.identity, &g.key, OFFER_TTL_SECONDS, &sealed).map_err(|e| {
                WalletError::Delivery { guardian: format!("{} ({})", g.name, g.key), reason: e.to_string() }
            })?;
        }
        let records: Vec<GuardianRecord> = guardians
            .iter()
            .zip(&shares)
            .map(|(g, s)| GuardianRecord {
                name: g.name.clone(),
                key: g.key,
                box_key: g.box_key,
                mailbox: recovery::share_mailbox(s),
                accepted_at: None,
                proved_at: None,
            })
            .collect();
        let roster = GuardianRoster {
            patient: me,
            set_id,
            patient_name: self.name.clone(),
            guardians: records
                .iter()
                .map(|r| RosterGuardian {
                    index: r.mailbox.index,
                    key: r.key,
                    box_key: r.box_key,
                    name: r.name.clone(),
                })
                .collect(),
        };
        let roster = statement::sign(roster, &self.identity)?;
        let body = seal_statement(&roster, &[self.identity.box_public()], EntryKind::GuardianSet, &tag)
            .map_err(|e| WalletError::Corrupt(e.to_string()))?;
        let content = Content::GuardianSet {
            tag,
            set_id,
            threshold,
            count,
            waiting_seconds,
            mailboxes: records.iter().map(|r| r.mailbox).collect(),
            supersedes,
            body,
        };
        let entry = statement::sign(LedgerEntry::new(me, now, content), &self.identity)?;
        let index = ledger.append_one(entry)?;
        self.guardians.setup = Some(GuardianSetup {
            set_id,
            threshold,
            count,
            waiting_seconds,
            created_at: now,
            entry_index: Some(index),
            guardians: records,
            challenge: None,
        });
        // Requests made before this set are answered by nobody any more.
        self.guardians.alerts.clear();
        self.save()
    }

    /// Collects guardians' acknowledgements and liveness proofs, then asks every guardian again to prove
    /// it still holds a valid share (answered when the guardian's wallet next looks at its inbox).
    pub fn check_guardians(&mut self, now: Timestamp) -> Result<GuardianSetView, WalletError> {
        let url = self.ledger.as_ref().ok_or(WalletError::NotEnrolled)?.url.clone();
        self.guardians.setup.as_ref().ok_or(WalletError::NoGuardians)?;
        let mut inbox = Inbox::default();
        self.process_ledger(&url, &mut BTreeMap::new(), &mut inbox, now)?;
        let (ledger, _) = self.session()?;
        let nonce = EntryNonce::generate();
        let setup = self.guardians.setup.as_mut().ok_or(WalletError::NoGuardians)?;
        for g in &setup.guardians {
            let body = MailBody::Challenge { set_id: setup.set_id, nonce };
            let sealed = seal_mail(&self.identity, &g.mailbox.key, &g.mailbox.box_key, body, None, now)
                .map_err(|e| WalletError::Corrupt(e.to_string()))?;
            ledger.client().mail_post(&self.identity, &g.mailbox.key, MAIL_TTL_SECONDS, &sealed)?;
        }
        setup.challenge = Some((nonce, now));
        self.save()?;
        self.guardian_set().ok_or(WalletError::NoGuardians)
    }

    /// As the patient's old device: vetoes recovery requests on the ledger (`only` one, or every open one
    /// a sync finds). Returns the requests cancelled.
    pub fn cancel_recovery(&mut self, only: Option<RequestId>, now: Timestamp) -> Result<Vec<RequestId>, WalletError> {
        self.check_not_retired()?;
        self.sync(now)?;
        let open: Vec<RecoveryAlert> = self
            .guardians
            .alerts
            .iter()
            .filter(|a| a.cancelled_at.is_none() && only.is_none_or(|id| a.request_id == id))
            .cloned()
            .collect();
        if let Some(id) = only
            && open.is_empty()
        {
            return Err(WalletError::UnknownRecoveryRequest(id.to_string()));
        }
        let (mut ledger, link) = self.session()?;
        let tag = self.identity.ledger_tag();
        let mut cancelled = Vec::new();
        for alert in open {
            let content = Content::RecoveryCancel { tag, request_id: alert.request_id };
            let entry = statement::sign(LedgerEntry::new(self.signing_key(), now, content), &self.identity)?;
            ledger.append_one(entry)?;
            if let Some(a) = self.guardians.alerts.iter_mut().find(|a| a.request_id == alert.request_id) {
                a.cancelled_at = Some(now);
            }
            cancelled.push(alert.request_id);
        }
        self.commit(link, &ledger, None)?;
        Ok(cancelled)
    }

    /// Keeps what a sync learned about recovery on this wallet's own tag.
    pub(in crate::wallet) fn learn_recovery(
        &mut self,
        learned: crate::ledger::verify::Learned,
    ) -> Result<(), WalletError> {
        use crate::ledger::verify::Learned;
        match learned {
            Learned::GuardianSet(set) => {
                let newer = self.guardians.setup.as_ref().is_none_or(|s| s.entry_index.is_none_or(|i| i < set.index));
                let same = self.guardians.setup.as_ref().is_some_and(|s| s.set_id == set.set_id);
                if same {
                    if let Some(s) = self.guardians.setup.as_mut() {
                        s.entry_index = Some(set.index);
                    }
                } else if newer {
                    // A set made on another device with this seed, or the one a recovered wallet restores.
                    let guardians = set
                        .roster
                        .guardians
                        .iter()
                        .zip(&set.mailboxes)
                        .map(|(g, m)| GuardianRecord {
                            name: g.name.clone(),
                            key: g.key,
                            box_key: g.box_key,
                            mailbox: *m,
                            accepted_at: None,
                            proved_at: None,
                        })
                        .collect();
                    self.guardians.setup = Some(GuardianSetup {
                        set_id: set.set_id,
                        threshold: set.threshold,
                        count: set.count,
                        waiting_seconds: set.waiting_seconds,
                        created_at: set.at,
                        entry_index: Some(set.index),
                        guardians,
                        challenge: None,
                    });
                    if self.name.starts_with(RECOVERING_NAME) {
                        self.name = set.roster.patient_name.clone();
                    }
                }
                self.guardians.alerts.retain(|a| a.index > set.index);
            }
            Learned::RecoveryRequest { index, at, request_id, device, .. } => {
                let own = self.guardians.recovering.as_ref().is_some_and(|r| r.request_id == request_id);
                if !own && !self.guardians.alerts.iter().any(|a| a.request_id == request_id) {
                    self.guardians.alerts.push(RecoveryAlert {
                        index,
                        request_id,
                        device,
                        asked_at: at,
                        cancelled_at: None,
                    });
                }
            }
            Learned::RecoveryCancel { at, request_id, .. } => {
                if let Some(a) = self.guardians.alerts.iter_mut().find(|a| a.request_id == request_id) {
                    a.cancelled_at.get_or_insert(at);
                }
            }
            Learned::KeyRotation { index, at, new_key, former_seeds, .. } => match former_seeds {
                Some(seeds) => {
                    for seed in seeds {
                        if seed.expose_secret() != self.seed.expose_secret()
                            && !self.former.iter().any(|f| f.expose_secret() == seed.expose_secret())
                        {
                            self.former.push(seed);
                        }
                    }
                    self.former.truncate(recovery::MAX_FORMER_SEEDS);
                    self.guardians.alerts.retain(|a| a.index > index);
                }
                None => {
                    if new_key != self.signing_key() && !self.keys_include(&new_key) {
                        self.guardians.retired = Some(Retired { index, at, successor: new_key });
                    }
                }
            },
            _ => {}
        }
        Ok(())
    }

    /// Checks the ledger's public recovery record for this wallet's key: if another device rotated it
    /// away, remembers that (and the successor) and answers [`WalletError::Retired`].
    pub(in crate::wallet) fn learn_retirement(&mut self, ledger: &mut Ledger) -> Result<(), WalletError> {
        let me = self.signing_key();
        let view = ledger.recovery(&self.identity, &me)?;
        if view.patient.key == me || !view.keys.contains(&me) {
            return Ok(());
        }
        let (index, at) = view
            .rotations
            .iter()
            .find(|(_, _, old, _)| *old == me)
            .map(|(index, at, _, _)| (*index, *at))
            .unwrap_or((view.patient.index, self.created_at));
        self.guardians.retired = Some(Retired { index, at, successor: view.patient.key });
        self.save()?;
        Err(WalletError::Retired { index, successor: view.patient.key.to_string() })
    }

    fn keys_include(&self, key: &SigningPublicKey) -> bool {
        self.former.iter().any(|s| Identity::from_seed(s).signing_public() == *key)
    }
}
