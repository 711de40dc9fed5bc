//! Social recovery: the patient's guardians and recovery alerts, a guardian's inbox and approvals, a new device's progress and finish.

use super::*;

/// Runs one of this screen's commands.
pub(crate) fn run(command: &str, call: Call<'_>) -> Result<Value, AppError> {
    let Call { u, args, settings, now } = call;
    match command {
        "guardians" => {
            let _: Empty = self::args(args)?;
            to_json(guardians_view(&u.wallet))
        }
        "guardian_contact" => {
            let TextArgs { text } = self::args(args)?;
            let (c, from_card) = u.wallet.guardian_contact_from(&text)?;
            to_json(GuardianCandidate {
                fingerprint: custodia_core::Fingerprint::of(&c.key, &c.box_key).to_string(),
                name: c.name,
                key: c.key.to_string(),
                from_card,
            })
        }
        "set_guardians" => {
            let a: SetGuardiansArgs = self::args(args)?;
            let most = custodia_core::recovery::MAX_GUARDIANS;
            if a.contacts.len() > usize::from(most) {
                return Err(AppError::bad_input(format!("choose at most {most} guardians")));
            }
            let mut contacts = Vec::with_capacity(a.contacts.len());
            for text in &a.contacts {
                contacts.push(u.wallet.guardian_contact_from(text)?.0);
            }
            let count = u8::try_from(contacts.len()).unwrap_or(u8::MAX);
            let threshold = a.threshold.unwrap_or_else(|| custodia_core::recovery::default_threshold(count));
            let waiting = a.waiting_seconds.unwrap_or(custodia_core::recovery::DEFAULT_WAITING_SECONDS);
            u.wallet.set_guardians(contacts, threshold, waiting, now)?;
            to_json(guardians_view(&u.wallet))
        }
        "remove_guardian" => {
            let KeyArgs { key } = self::args(args)?;
            let key: SigningPublicKey =
                key.trim().parse().map_err(|_| AppError::bad_input("that is not a guardian's key"))?;
            u.wallet.remove_guardian(&key, now)?;
            to_json(guardians_view(&u.wallet))
        }
        "check_guardians" => {
            let _: Empty = self::args(args)?;
            u.wallet.check_guardians(now)?;
            to_json(guardians_view(&u.wallet))
        }
        "cancel_recovery" => {
            let CancelRecoveryArgs { request_id: only } = self::args(args)?;
            let only = only.as_deref().map(request_id).transpose()?;
            let cancelled = u.wallet.cancel_recovery(only, now)?;
            to_json(RecoveryCancelled { cancelled: cancelled.iter().map(ToString::to_string).collect() })
        }
        "guardian_inbox" => {
            let InboxArgs { ledger } = self::args(args)?;
            let ledger = ledger.as_deref().map(str::trim).filter(|l| !l.is_empty());
            let inbox = u.wallet.guardian_inbox(ledger, now)?;
            to_json(GuardianInbox::of(&inbox))
        }
        "approve_recovery" => {
            let ApproveArgs { request_id: id, code } = self::args(args)?;
            let id = request_id(&id)?;
            let code = code.trim();
            if code.is_empty() {
                return Err(AppError::bad_input("type the six-digit code the patient reads from their new device"));
            }
            let r = u.wallet.approve_recovery(id, code, now)?;
            to_json(views::InboxRequest::of(&r))
        }
        "recovery_status" => {
            let _: Empty = self::args(args)?;
            to_json(views::RecoveryProgress::of(&u.wallet.recovery_status()?))
        }
        "finish_recovery" => {
            let _: Empty = self::args(args)?;
            let outcome = u.wallet.finish_recovery(now)?;
            // The restored wallet knows its grantees by key only: look each up again (as enrolled members,
            // checked against the authority's enrollment), so grants show names. Best effort: one that cannot
            // be found now stays a key, as it would for any grant to someone no longer enrolled.
            let mut grantees: Vec<SigningPublicKey> =
                u.wallet.grants().iter().filter(|g| !g.grant.emergency_card).map(|g| g.grant.grantee).collect();
            grantees.sort_by_key(ToString::to_string);
            grantees.dedup();
            for key in grantees {
                let _ = u.wallet.member(&key);
            }
            u.reindex();
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            to_json(RecoveryFinished {
                summary: summary(&u.wallet, settings.auto_lock_minutes),
                patient: outcome.patient.to_string(),
                grants: count(outcome.grants),
                access_events: count(outcome.access_events),
                guardians: count(outcome.guardians),
            })
        }
        _ => Err(unknown_command(command)),
    }
}

fn guardians_view(w: &Wallet) -> Guardians {
    use custodia_core::recovery::{DEFAULT_WAITING_SECONDS, MAX_GUARDIANS, MAX_WAITING_SECONDS, MIN_GUARDIANS};
    Guardians {
        set: w.guardian_set().as_ref().map(GuardianSet::of),
        held: w.held_shares().iter().map(HeldShare::of).collect(),
        alerts: w.recovery_alerts().iter().map(views::RecoveryAlert::of).collect(),
        retired: w.retired().map(|r| RetiredView {
            index: r.index as i64,
            at: ms(r.at),
            successor: r.successor.to_string(),
        }),
        default_thresholds: (MIN_GUARDIANS..=MAX_GUARDIANS).map(custodia_core::recovery::default_threshold).collect(),
        default_waiting_seconds: DEFAULT_WAITING_SECONDS,
        max_waiting_seconds: MAX_WAITING_SECONDS,
    }
}

fn request_id(text: &str) -> Result<RequestId, AppError> {
    text.trim().parse().map_err(|_| AppError::bad_input(format!("{text:?} is not a recovery request id")))
}
