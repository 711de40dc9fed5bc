//! The new device's side: start a recovery, follow its progress, give it up, or finish it (recombine,
//! check against the patient's current key, restore from the ledger, rotate and re-split).

use super::*;

impl Wallet {
    /// Starts recovering the patient `patient` on a new device: creates a wallet in `dir` whose fresh key
    /// is the device's one-time key, records the request on the ledger (which tells the patient's old
    /// device), and notifies every guardian of the current set through its share mailbox. With a network
    /// `profile`, its ledger, key and witness policy are used (`url` and `verifier_key` are ignored) and
    /// the recovered wallet stays pinned to them.
    #[allow(clippy::too_many_arguments)]
    pub fn start_recovery(
        dir: &Path,
        passphrase: Passphrase,
        kdf: KdfParams,
        url: &str,
        verifier_key: Option<&str>,
        profile: Option<&crate::network::NetworkProfile>,
        patient: &SigningPublicKey,
        now: Timestamp,
    ) -> Result<(Wallet, RecoveryProgress), WalletError> {
        let (mut ledger, _) = match profile {
            Some(p) => Ledger::connect_with(
                &p.ledger_url,
                Some(&p.log_key().to_vkey()),
                Some(std::sync::Arc::new(p.policy.clone())),
            )?,
            None => Ledger::connect(url, verifier_key)?,
        };
        // Looked up before the wallet is made (with a throwaway key: the lookup is any signer's), so a
        // mistyped key or a patient without guardians leaves nothing behind.
        let asker = Identity::from_seed(&MasterSeed::generate());
        let view = match ledger.recovery(&asker, patient) {
            Err(LedgerError::Problem { code, .. }) if code == "not-found" => {
                return Err(WalletError::NotAPatient(patient.to_string()));
            }
            other => other?,
        };
        let set = view.current_set().cloned().ok_or_else(|| WalletError::NoGuardianSet(patient.to_string()))?;
        let mut wallet = Wallet::create(dir, RECOVERING_NAME, passphrase, kdf, now)?;
        let request_id = RequestId::generate();
        let device_box = wallet.identity.box_public();
        let content = Content::RecoveryRequest { tag: view.patient.tag, request_id, device_box };
        let entry = statement::sign(LedgerEntry::new(wallet.signing_key(), now, content), &wallet.identity)?;
        let entry_index = ledger.append_one(entry)?;
        let mut reached = 0;
        for mailbox in &set.mailboxes {
            let body = MailBody::RecoveryNotice { patient: view.patient.key, request_id, entry_index };
            let sealed = seal_mail(&wallet.identity, &mailbox.key, &mailbox.box_key, body, None, now)
                .map_err(|e| WalletError::Corrupt(e.to_string()))?;
            if ledger.client().mail_post(&wallet.identity, &mailbox.key, MAIL_TTL_SECONDS, &sealed).is_ok() {
                reached += 1;
            }
        }
        if reached < set.threshold {
            return Err(WalletError::Delivery {
                guardian: format!("{} of {} guardians", set.count - reached, set.count),
                reason: "their mailboxes did not take the notice; run `recover start` again".into(),
            });
        }
        wallet.guardians.recovering = Some(Recovering {
            ledger: ledger.url().to_owned(),
            verifier_key: ledger.verifier_key(),
            authority: ledger.authority(),
            patient: view.patient.key,
            tag: view.patient.tag,
            request_id,
            entry_index,
            asked_at: now,
            set_id: set.set_id,
            threshold: set.threshold,
            count: set.count,
            waiting_seconds: set.waiting_seconds,
            mailboxes: set.mailboxes.clone(),
            witness_policy: profile.map(|p| p.policy.text().to_owned()),
            network: profile.map(|p| p.fingerprint().to_string()),
        });
        wallet.save()?;
        let progress = wallet.progress(&view, &Collected::default())?;
        Ok((wallet, progress))
    }

    /// Whether this wallet is a new device in the middle of a recovery.
    pub fn is_recovering(&self) -> bool {
        self.guardians.recovering.is_some()
    }

    fn recovering(&self) -> Result<&Recovering, WalletError> {
        self.guardians.recovering.as_ref().ok_or(WalletError::NotRecovering)
    }

    fn recovery_session(&self) -> Result<(Ledger, RecoveryView), WalletError> {
        let r = self.recovering()?;
        let policy = r
            .witness_policy
            .as_deref()
            .map(|text| {
                custodia_log::policy::Policy::parse(text)
                    .map(std::sync::Arc::new)
                    .map_err(|e| WalletError::Corrupt(format!("the recovery's witness policy: {e}")))
            })
            .transpose()?;
        let (mut ledger, _) = Ledger::connect_with(&r.ledger, Some(&r.verifier_key), policy)?;
        let view = ledger.recovery(&self.identity, &r.patient)?;
        Ok((ledger, view))
    }

    /// What the guardians sent this device for the recovery under way, checked: from a mailbox of the
    /// request's guardian set, for this request, a share matching what was signed. Returns the released
    /// shares, the indexes approved (released or not), and the ids of the mails read.
    fn collect_releases(&self, ledger: &Ledger) -> Result<Collected, WalletError> {
        let r = self.recovering()?;
        let mut collected = Collected::default();
        for mail in ledger.client().mail_list(&self.identity)?.messages {
            let Some(bytes) = decode_mail(&mail) else { continue };
            let Ok(opened) = open_mail(&self.identity, &bytes) else { continue };
            if opened.mail.from != mail.from {
                continue;
            }
            let (request_id, set_id, index) = match opened.mail.body {
                MailBody::ShareRelease { request_id, set_id, index, .. }
                | MailBody::RecoveryApproved { request_id, set_id, index, .. } => (request_id, set_id, index),
                _ => continue,
            };
            if request_id != r.request_id {
                continue;
            }
            let from_set = r.mailboxes.iter().any(|m| m.index == index && m.key == opened.mail.from);
            if set_id != r.set_id || !from_set {
                return Err(WalletError::SupersededSet(set_id.to_string()));
            }
            if !collected.approved.contains(&index) {
                collected.approved.push(index);
            }
            collected.mail_ids.push(mail.id);
            if let Some(share) = opened.share
                && !collected.shares.iter().any(|s| s.index() == share.index())
            {
                collected.shares.push(share);
            }
        }
        collected.approved.sort_unstable();
        Ok(collected)
    }

    fn progress(&self, view: &RecoveryView, collected: &Collected) -> Result<RecoveryProgress, WalletError> {
        let shares = &collected.shares;
        let r = self.recovering()?;
        let public = view.request(&r.request_id);
        let cancelled_at = public.and_then(|p| p.cancelled.map(|(_, at)| at));
        let asked_at = public.map(|p| p.at).unwrap_or(r.asked_at);
        let superseded = view.current_set().is_none_or(|s| s.set_id != r.set_id);
        let phase = if cancelled_at.is_some() {
            RecoveryPhase::Cancelled
        } else if superseded {
            RecoveryPhase::Superseded
        } else if shares.len() >= usize::from(r.threshold) {
            RecoveryPhase::Ready
        } else {
            RecoveryPhase::Waiting
        };
        let mut received: Vec<u8> = shares.iter().map(SeedShare::index).collect();
        received.sort_unstable();
        Ok(RecoveryProgress {
            request_id: r.request_id,
            patient: r.patient,
            ledger: r.ledger.clone(),
            code: verification_code(&r.request_id, &self.signing_key(), &self.identity.box_public()),
            entry_index: r.entry_index,
            asked_at,
            release_at: ts_add(asked_at, r.waiting_seconds),
            threshold: r.threshold,
            count: r.count,
            approved: collected.approved.clone(),
            received,
            phase,
            cancelled_at,
        })
    }

    /// Where the recovery under way stands: shares received, the waiting period, a veto.
    pub fn recovery_status(&self) -> Result<RecoveryProgress, WalletError> {
        let (ledger, view) = self.recovery_session()?;
        let collected = self.collect_releases(&ledger)?;
        self.progress(&view, &collected)
    }

    /// Gives up the recovery under way on this device and removes the device's wallet, which holds
    /// nothing but the request's one-time key: the request stays on the ledger, unanswered, and a share
    /// released to that key later opens for no one. Returns the request's id.
    pub fn abandon_recovery(self) -> Result<RequestId, WalletError> {
        let id = self.recovering()?.request_id;
        let vault = self.dir().join(crate::vault::VAULT_FILE_NAME);
        // Dropping the wallet releases the directory's lock before its vault goes.
        drop(self);
        std::fs::remove_file(&vault).map_err(|source| crate::vault::VaultError::Io {
            action: "remove the recovering wallet",
            path: vault.clone(),
            source,
        })?;
        Ok(id)
    }

    /// Recombines the released shares, checks the seed is the patient's current key, becomes that wallet
    /// (restoring grants, guardians and the access log from the ledger), then rotates to a new seed and
    /// re-splits it to the same guardians, so the shares just used are worthless.
    pub fn finish_recovery(&mut self, now: Timestamp) -> Result<RecoveryOutcome, WalletError> {
        let (ledger, view) = self.recovery_session()?;
        let collected = self.collect_releases(&ledger)?;
        let progress = self.progress(&view, &collected)?;
        let Collected { shares, mail_ids, .. } = collected;
        match progress.phase {
            RecoveryPhase::Cancelled => {
                return Err(WalletError::RecoveryCancelled { at: progress.cancelled_at.unwrap_or(now) });
            }
            RecoveryPhase::Superseded => return Err(WalletError::SupersededSet(self.recovering()?.set_id.to_string())),
            RecoveryPhase::Waiting => {
                return Err(WalletError::NotEnoughShares { have: shares.len(), need: progress.threshold });
            }
            RecoveryPhase::Ready => {}
        }
        let seed = shamir::recover(&shares).map_err(|e| match e {
            ShamirError::NotEnoughShares { have, need } => WalletError::NotEnoughShares { have, need },
            other => WalletError::Shares(other),
        })?;
        let tag = view.patient.tag;
        let identity = Identity::from_seed(&seed).with_ledger_tag(tag);
        if identity.signing_public() != view.patient.key {
            return Err(if view.keys.contains(&identity.signing_public()) {
                WalletError::SupersededSet(self.recovering()?.set_id.to_string())
            } else {
                WalletError::RecoveredKeyMismatch(view.patient.key.to_string())
            });
        }
        let mut former = Vec::new();
        for logged in view.rotation_entries.iter().rev() {
            let Some(entry) = &logged.entry else { continue };
            if let Content::KeyRotation { new_key, body, .. } = &entry.content
                && *new_key == identity.signing_public()
            {
                former = recovery::open_former_seeds(&identity, &tag, body)
                    .map_err(|e| LedgerError::BadEntry { index: logged.index, reason: e.to_string() })?;
                break;
            }
        }
        let device = self.service_identity();
        let link = LedgerLink {
            url: ledger.url().to_owned(),
            verifier_key: ledger.verifier_key(),
            authority: ledger.authority(),
            enrollment_index: view.patient.index,
            checkpoint: ledger.checkpoint().clone(),
            synced_through: None,
            members: Vec::new(),
            access_events: Vec::new(),
            witness_policy: ledger.policy().cloned(),
            network: self.recovering()?.network.clone(),
        };
        // From here on this vault is the patient's wallet: written before anything else happens.
        self.seed = seed;
        self.former = former;
        self.identity = identity;
        self.tag = Some(tag);
        self.ledger = Some(link);
        self.grants.clear();
        self.guardians = GuardianState { recovering: self.guardians.recovering.take(), ..GuardianState::default() };
        self.save()?;
        for id in mail_ids {
            ledger.client().mail_delete(&device, &id)?;
        }
        self.sync(now)?;
        let recovered_key = self.signing_key();
        self.guardians.recovering = None;
        self.save()?;
        let setup = self.guardians.setup.clone();
        let set_id = match setup {
            Some(setup) => {
                let contacts = setup
                    .guardians
                    .iter()
                    .map(|g| GuardianContact { name: g.name.clone(), key: g.key, box_key: g.box_key })
                    .collect();
                self.set_guardians(contacts, setup.threshold, setup.waiting_seconds, now)?.set_id
            }
            None => {
                let (mut ledger, link) = self.session()?;
                self.rotate(&mut ledger, now)?;
                self.commit(link, &ledger, None)?;
                return Ok(RecoveryOutcome {
                    patient: recovered_key,
                    new_key: self.signing_key(),
                    grants: self.grants.len(),
                    access_events: self.access_events().len(),
                    guardians: 0,
                    set_id: None,
                });
            }
        };
        Ok(RecoveryOutcome {
            patient: recovered_key,
            new_key: self.signing_key(),
            grants: self.grants.len(),
            access_events: self.access_events().len(),
            guardians: self.guardians.setup.as_ref().map_or(0, |s| s.guardians.len()),
            set_id: Some(set_id),
        })
    }
}

/// What a new device's mailbox held for its recovery.
#[derive(Default)]
struct Collected {
    shares: Vec<SeedShare>,
    approved: Vec<u8>,
    mail_ids: Vec<String>,
}

/// The name a recovering wallet has until the patient's own name is restored from the ledger.
pub const RECOVERING_NAME: &str = "Recovering wallet";
