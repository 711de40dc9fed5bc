//! A guardian's side: the inbox that accepts shares, answers liveness challenges, learns of recovery
//! requests and emergency-card reads, and releases an approved share once the waiting period has passed
//! with no veto on the ledger.

use super::*;

impl Wallet {
    /// The shares this wallet holds for others.
    pub fn held_shares(&self) -> Vec<HeldShareView> {
        self.guardians.held.iter().map(held_view).collect()
    }

    /// Reads this wallet's mail at its own ledger, at `extra_ledger`, and at the ledgers of the shares it
    /// holds: accepts offered shares (and acknowledges them), answers liveness challenges, takes note of
    /// recovery requests, and releases approved shares whose waiting period is over. Meant to run
    /// unattended, too (a hospital's recovery desk).
    pub fn guardian_inbox(&mut self, extra_ledger: Option<&str>, now: Timestamp) -> Result<Inbox, WalletError> {
        let mut urls: Vec<String> = Vec::new();
        let mut add = |url: String| {
            if !urls.contains(&url) && urls.len() < MAX_LEDGERS {
                urls.push(url);
            }
        };
        if let Some(link) = &self.ledger {
            add(link.url.clone());
        }
        if let Some(url) = extra_ledger {
            add(crate::ledger::normalise_url(url)?);
        }
        for meta in &self.guardians.held {
            add(meta.ledger.clone());
        }
        let mut inbox = Inbox::default();
        let mut views: BTreeMap<String, RecoveryView> = BTreeMap::new();
        for url in &urls {
            self.process_ledger(url, &mut views, &mut inbox, now)?;
        }
        self.release_due(&mut views, &mut inbox, now)?;
        self.save()?;
        inbox.shares = self.held_shares();
        inbox.requests = self.inbox_requests();
        inbox.break_glass = self.guardians.notices.clone();
        Ok(inbox)
    }

    fn inbox_requests(&self) -> Vec<InboxRequest> {
        self.guardians
            .requests
            .iter()
            .map(|r| {
                let name = self
                    .guardians
                    .held
                    .iter()
                    .find(|m| m.set_id == r.set_id)
                    .map(|m| m.patient_name.clone())
                    .unwrap_or_default();
                InboxRequest {
                    request_id: r.request_id,
                    patient: r.patient,
                    patient_name: name,
                    device: r.device,
                    asked_at: r.asked_at,
                    release_at: r.release_at(),
                    state: request_state(r),
                }
            })
            .collect()
    }

    /// One ledger's mail: this wallet's own mailbox (offers; as a patient, acknowledgements and proofs)
    /// and the mailbox of every current share it holds there (challenges, recovery notices).
    pub(super) fn process_ledger(
        &mut self,
        url: &str,
        views: &mut BTreeMap<String, RecoveryView>,
        inbox: &mut Inbox,
        now: Timestamp,
    ) -> Result<(), WalletError> {
        let (mut ledger, link, _) = self.session_for(url, None)?;
        let mut done: Vec<(Identity, String)> = Vec::new();
        for mail in ledger.client().mail_list(&self.identity)?.messages {
            let Some(bytes) = decode_mail(&mail) else { continue };
            // Not every message is about recovery (access answers share the mailbox): leave the rest.
            let Ok(opened) = open_mail(&self.identity, &bytes) else { continue };
            if opened.mail.from != mail.from {
                done.push((self.service_identity(), mail.id));
                continue;
            }
            if self.handle_own_mail(&ledger, url, opened, inbox, now)? {
                done.push((self.service_identity(), mail.id));
            }
        }
        let held: Vec<usize> = (0..self.guardians.held.len())
            .filter(|&i| self.guardians.held[i].ledger == url && !self.guardians.held[i].superseded)
            .collect();
        for i in held {
            let sid = share_identity(&self.held[i]);
            for mail in ledger.client().mail_list(&sid)?.messages {
                let Some(bytes) = decode_mail(&mail) else { continue };
                let handled = match open_mail(&sid, &bytes) {
                    Ok(opened) if opened.mail.from == mail.from => {
                        self.handle_share_mail(&mut ledger, i, &sid, opened, views, inbox, now)?
                    }
                    _ => true,
                };
                if handled {
                    done.push((share_identity(&self.held[i]), mail.id));
                }
            }
        }
        // Every patient with a share here: is the share still current, is any request cancelled?
        let patients: BTreeSet<String> = self
            .guardians
            .held
            .iter()
            .filter(|m| m.ledger == url && !m.superseded)
            .map(|m| m.patient.to_string())
            .collect();
        for patient in patients {
            let Some(i) = self.guardians.held.iter().position(|m| m.patient.to_string() == patient) else { continue };
            let key = self.guardians.held[i].patient;
            let sid = share_identity(&self.held[i]);
            let view = match ledger.recovery(&sid, &key) {
                Ok(v) => v,
                Err(LedgerError::Problem { code, .. }) if code == "not-found" => continue,
                Err(e) => return Err(e.into()),
            };
            self.apply_view(&view);
            views.insert(key.to_string(), view);
        }
        self.save()?;
        for (identity, id) in done {
            ledger.client().mail_delete(&identity, &id)?;
        }
        if let Some(link) = link {
            self.commit(link, &ledger, None)?;
        }
        Ok(())
    }

    /// Marks shares superseded and requests cancelled as `view` says.
    fn apply_view(&mut self, view: &RecoveryView) {
        let current = view.current_set().map(|s| s.set_id);
        for m in self.guardians.held.iter_mut().filter(|m| view.keys.contains(&m.patient)) {
            if current != Some(m.set_id) {
                m.superseded = true;
            }
        }
        for r in self.guardians.requests.iter_mut().filter(|r| view.keys.contains(&r.patient)) {
            if let Some(public) = view.request(&r.request_id)
                && let Some((_, at)) = public.cancelled
            {
                r.cancelled_at.get_or_insert(at);
            }
        }
    }

    /// Mail to this wallet's own key. Returns whether it was dealt with (and may be deleted).
    fn handle_own_mail(
        &mut self,
        ledger: &Ledger,
        url: &str,
        opened: OpenedMail,
        inbox: &mut Inbox,
        now: Timestamp,
    ) -> Result<bool, WalletError> {
        let OpenedMail { mail, share } = opened;
        match &mail.body {
            MailBody::ShareOffer {
                ledger: at,
                tag,
                patient_box,
                patient_name,
                set_id,
                index,
                threshold,
                count,
                waiting_seconds,
                ..
            } => {
                let Some(share) = share else { return Ok(true) };
                if crate::ledger::normalise_url(at).ok().as_deref() != Some(url) {
                    // An offer names the ledger it was posted to; one naming another is not honest.
                    return Ok(true);
                }
                if !self.guardians.held.iter().any(|m| m.set_id == *set_id && m.index == *index) {
                    self.guardians.held.push(HeldMeta {
                        patient: mail.from,
                        patient_box: *patient_box,
                        patient_name: patient_name.clone(),
                        ledger: url.to_owned(),
                        tag: *tag,
                        set_id: *set_id,
                        index: *index,
                        threshold: *threshold,
                        count: *count,
                        waiting_seconds: *waiting_seconds,
                        received_at: now,
                        superseded: false,
                    });
                    self.held.push(copy_share(&share)?);
                    // Kept before it is acknowledged: an acknowledged share is one the vault holds.
                    self.save()?;
                    inbox.accepted += 1;
                }
                let sid = share_identity(&share);
                let body = MailBody::ShareAccepted { set_id: *set_id, index: *index, guardian: self.signing_key() };
                let sealed = seal_mail(&sid, &mail.from, patient_box, body, None, now)
                    .map_err(|e| WalletError::Corrupt(e.to_string()))?;
                ledger.client().mail_post(&sid, &mail.from, MAIL_TTL_SECONDS, &sealed)?;
                Ok(true)
            }
            MailBody::ShareAccepted { set_id, index, guardian } => {
                if let Some(g) = self.setup_guardian(set_id, *index, &mail.from)
                    && g.key == *guardian
                {
                    g.accepted_at.get_or_insert(mail.at.min(now));
                    inbox.acknowledgements += 1;
                }
                Ok(true)
            }
            MailBody::Proof { set_id, index, nonce } => {
                let expected = self.guardians.setup.as_ref().and_then(|s| s.challenge).map(|(n, _)| n);
                if expected == Some(*nonce)
                    && let Some(g) = self.setup_guardian(set_id, *index, &mail.from)
                {
                    g.proved_at = Some(mail.at.min(now));
                    g.accepted_at.get_or_insert(mail.at.min(now));
                    inbox.acknowledgements += 1;
                }
                Ok(true)
            }
            _ => Ok(true),
        }
    }

    /// The guardian of the current set whose share mailbox is `from` and index `index`.
    fn setup_guardian(&mut self, set_id: &SetId, index: u8, from: &SigningPublicKey) -> Option<&mut GuardianRecord> {
        let setup = self.guardians.setup.as_mut().filter(|s| s.set_id == *set_id)?;
        setup.guardians.iter_mut().find(|g| g.mailbox.index == index && g.mailbox.key == *from)
    }

    /// Mail to the mailbox of held share `i`. Returns whether it was dealt with.
    #[allow(clippy::too_many_arguments)]
    fn handle_share_mail(
        &mut self,
        ledger: &mut Ledger,
        i: usize,
        sid: &Identity,
        opened: OpenedMail,
        views: &mut BTreeMap<String, RecoveryView>,
        inbox: &mut Inbox,
        now: Timestamp,
    ) -> Result<bool, WalletError> {
        let meta = self.guardians.held[i].clone();
        let mail = opened.mail;
        match &mail.body {
            MailBody::Challenge { set_id, nonce } if *set_id == meta.set_id => {
                if mail.from != meta.patient {
                    return Ok(true);
                }
                let body = MailBody::Proof { set_id: meta.set_id, index: meta.index, nonce: *nonce };
                let sealed = seal_mail(sid, &meta.patient, &meta.patient_box, body, None, now)
                    .map_err(|e| WalletError::Corrupt(e.to_string()))?;
                ledger.client().mail_post(sid, &meta.patient, MAIL_TTL_SECONDS, &sealed)?;
                inbox.proofs_sent += 1;
                Ok(true)
            }
            MailBody::BreakGlass { event } => {
                // The gateway's signature, its enrollment as a gateway, and the patient: as the patient's
                // own wallet checks an access event.
                let Ok(event) =
                    custodia_core::statement::Unverified::<custodia_core::entry::AccessEvent>::decode(event.as_bytes())
                        .and_then(|e| e.verify_signed_by(&mail.from))
                else {
                    return Ok(true);
                };
                let gateway = match ledger.member(&mail.from) {
                    Ok(m) => m,
                    Err(LedgerError::NotAMember(_)) => return Ok(true),
                    Err(e) => return Err(e.into()),
                };
                if gateway.role != custodia_core::entry::Role::Gateway
                    || !event.break_glass
                    || event.patient != meta.patient
                {
                    return Ok(true);
                }
                let id = event.id.to_string();
                if !self.guardians.notices.iter().any(|n| n.id == id) {
                    self.guardians.notices.push(BreakGlassNotice {
                        id,
                        patient: event.patient,
                        patient_name: meta.patient_name.clone(),
                        gateway: mail.from,
                        reader: event.reader,
                        reader_name: event.reader_name.clone(),
                        organisation: event.organisation.clone(),
                        at: event.at,
                        outcome: event.outcome,
                        resources: event.resources.iter().map(|r| format!("{}/{}", r.resource_type, r.id)).collect(),
                    });
                    let excess = self.guardians.notices.len().saturating_sub(MAX_NOTICES);
                    self.guardians.notices.drain(..excess);
                    inbox.new_break_glass += 1;
                }
                Ok(true)
            }
            MailBody::RecoveryNotice { patient, request_id, .. } => {
                if self.guardians.requests.iter().any(|r| r.request_id == *request_id && r.set_id == meta.set_id) {
                    return Ok(true);
                }
                let key = meta.patient;
                let view = match views.entry(key.to_string()) {
                    std::collections::btree_map::Entry::Occupied(seen) => seen.into_mut(),
                    std::collections::btree_map::Entry::Vacant(slot) => slot.insert(ledger.recovery(sid, &key)?),
                };
                // The request must be on the ledger under this patient, from the device that mailed it,
                // while this share's set is the current one.
                let Some(public) = view.request(request_id) else { return Ok(true) };
                let current = view.current_set().is_some_and(|s| s.set_id == meta.set_id);
                if public.device != mail.from || !view.keys.contains(patient) || !current {
                    return Ok(true);
                }
                self.guardians.requests.push(SeenRequest {
                    request_id: *request_id,
                    patient: key,
                    set_id: meta.set_id,
                    ledger: meta.ledger.clone(),
                    device: public.device,
                    device_box: public.device_box,
                    asked_at: public.at,
                    entry_index: public.index,
                    waiting_seconds: view.current_set().map(|s| s.waiting_seconds).unwrap_or(meta.waiting_seconds),
                    wrong_codes: 0,
                    approved_at: None,
                    released_at: None,
                    cancelled_at: public.cancelled.map(|(_, at)| at),
                });
                let excess = self.guardians.requests.len().saturating_sub(MAX_SEEN_REQUESTS);
                self.guardians.requests.drain(..excess);
                Ok(true)
            }
            _ => Ok(true),
        }
    }

    /// Approves a recovery request after the guardian compared `code` with the patient. The share is
    /// released now if the waiting period is over, else by the first inbox run after it.
    pub fn approve_recovery(
        &mut self,
        request_id: RequestId,
        code: &str,
        now: Timestamp,
    ) -> Result<InboxRequest, WalletError> {
        let position = self
            .guardians
            .requests
            .iter()
            .position(|r| r.request_id == request_id)
            .ok_or_else(|| WalletError::UnknownRecoveryRequest(request_id.to_string()))?;
        let request = self.guardians.requests[position].clone();
        if request.wrong_codes >= MAX_WRONG_CODES {
            return Err(WalletError::TooManyWrongCodes);
        }
        // The ledger's word, fresh: a veto or a new guardian set since the request was seen stops it.
        let share_at = self
            .guardians
            .held
            .iter()
            .position(|m| m.set_id == request.set_id)
            .ok_or_else(|| WalletError::UnknownRecoveryRequest(request_id.to_string()))?;
        let sid = share_identity(&self.held[share_at]);
        let (mut ledger, link, _) = self.session_for(&request.ledger, None)?;
        let view = ledger.recovery(&sid, &request.patient)?;
        self.apply_view(&view);
        let request = self.guardians.requests[position].clone();
        if let Some(at) = request.cancelled_at {
            self.save()?;
            return Err(WalletError::RecoveryCancelled { at });
        }
        if self.guardians.held[share_at].superseded {
            self.save()?;
            return Err(WalletError::SupersededSet(request.set_id.to_string()));
        }
        if !codes_match(&request.code(), code) {
            self.guardians.requests[position].wrong_codes += 1;
            self.save()?;
            let left = MAX_WRONG_CODES.saturating_sub(self.guardians.requests[position].wrong_codes);
            return Err(WalletError::WrongCode { left });
        }
        if self.guardians.requests[position].approved_at.is_none() {
            self.guardians.requests[position].approved_at = Some(now);
            self.save()?;
            // Tells the new device at once, so the patient sees who approved while the waiting runs.
            let body = MailBody::RecoveryApproved {
                patient: request.patient,
                request_id,
                set_id: request.set_id,
                index: self.held[share_at].index(),
            };
            let sealed = seal_mail(&sid, &request.device, &request.device_box, body, None, now)
                .map_err(|e| WalletError::Corrupt(e.to_string()))?;
            ledger.client().mail_post(&sid, &request.device, MAIL_TTL_SECONDS, &sealed)?;
        }
        let mut views = BTreeMap::from([(request.patient.to_string(), view)]);
        let mut inbox = Inbox::default();
        self.release_due(&mut views, &mut inbox, now)?;
        self.save()?;
        if let Some(link) = link {
            self.commit(link, &ledger, None)?;
        }
        self.inbox_requests()
            .into_iter()
            .find(|r| r.request_id == request_id)
            .ok_or_else(|| WalletError::UnknownRecoveryRequest(request_id.to_string()))
    }

    /// Sends the shares of approved requests whose waiting period is over and that no veto stopped.
    fn release_due(
        &mut self,
        views: &mut BTreeMap<String, RecoveryView>,
        inbox: &mut Inbox,
        now: Timestamp,
    ) -> Result<(), WalletError> {
        for position in 0..self.guardians.requests.len() {
            let request = self.guardians.requests[position].clone();
            if request.approved_at.is_none()
                || request.released_at.is_some()
                || request.cancelled_at.is_some()
                || now < request.release_at()
            {
                continue;
            }
            let Some(share_at) = self.guardians.held.iter().position(|m| m.set_id == request.set_id) else { continue };
            if self.guardians.held[share_at].superseded {
                continue;
            }
            let sid = share_identity(&self.held[share_at]);
            let (mut ledger, _, _) = self.session_for(&request.ledger, None)?;
            // Checked against the ledger at the moment of release, not when last seen.
            let view = ledger.recovery(&sid, &request.patient)?;
            self.apply_view(&view);
            views.insert(request.patient.to_string(), view);
            let request = self.guardians.requests[position].clone();
            if request.cancelled_at.is_some() || self.guardians.held[share_at].superseded {
                continue;
            }
            let share = &self.held[share_at];
            let body = MailBody::ShareRelease {
                patient: request.patient,
                request_id: request.request_id,
                set_id: request.set_id,
                index: share.index(),
                share_digest: share_digest(share),
            };
            let sealed = seal_mail(&sid, &request.device, &request.device_box, body, Some(share), now)
                .map_err(|e| WalletError::Corrupt(e.to_string()))?;
            ledger.client().mail_post(&sid, &request.device, MAIL_TTL_SECONDS, &sealed)?;
            self.guardians.requests[position].released_at = Some(now);
            self.save()?;
            inbox.released.push(request.request_id);
        }
        Ok(())
    }
}

fn request_state(r: &SeenRequest) -> RequestState {
    if r.cancelled_at.is_some() {
        RequestState::Cancelled
    } else if r.released_at.is_some() {
        RequestState::Released
    } else if r.approved_at.is_some() {
        RequestState::Approved
    } else if r.wrong_codes >= MAX_WRONG_CODES {
        RequestState::Locked
    } else {
        RequestState::AwaitingCode
    }
}

fn held_view(m: &HeldMeta) -> HeldShareView {
    HeldShareView {
        patient: m.patient,
        patient_name: m.patient_name.clone(),
        ledger: m.ledger.clone(),
        set_id: m.set_id,
        index: m.index,
        threshold: m.threshold,
        count: m.count,
        received_at: m.received_at,
        superseded: m.superseded,
    }
}
