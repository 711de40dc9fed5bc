//! Home and the wallet's own settings: enroll, the ledger's address, the passphrase, the contact card, sync.

use super::*;

/// Runs one of this screen's commands.
pub(crate) fn run(command: &str, call: Call<'_>) -> Result<Value, AppError> {
    let Call { u, args, settings, now } = call;
    match command {
        "enroll" => {
            let LedgerArgs { ledger_url } = self::args(args)?;
            u.wallet.enroll(ledger_url.trim(), None, now)?;
            to_json(summary(&u.wallet, settings.auto_lock_minutes))
        }
        "join_network" => {
            let ProfileArgs { profile } = self::args(args)?;
            u.wallet.enroll_network(&parse_profile(&profile)?, now)?;
            to_json(summary(&u.wallet, settings.auto_lock_minutes))
        }
        "set_ledger_url" => {
            let LedgerArgs { ledger_url } = self::args(args)?;
            u.wallet.move_ledger(ledger_url.trim())?;
            to_json(summary(&u.wallet, settings.auto_lock_minutes))
        }
        "change_passphrase" => {
            let ChangePassphraseArgs { current, new } = self::args(args)?;
            let current = passphrase(current)?;
            // The current passphrase must open the vault as it is on disk; a walk-up attacker at an
            // unlocked screen cannot change it.
            let file =
                custodia_wallet::vault::read_vault(&u.wallet.dir().join(custodia_wallet::vault::VAULT_FILE_NAME))
                    .map_err(WalletError::from)?;
            custodia_wallet::vault::open(&file, &current).map_err(WalletError::from)?;
            u.wallet.change_passphrase(passphrase(new)?)?;
            Ok(json!({}))
        }
        "contact_qr" => {
            let _: Empty = self::args(args)?;
            let text = QrPayload::Contact(u.wallet.contact_card()).encode();
            let svg = qr::render_svg(&text).map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?;
            to_json(QrView { text, svg })
        }
        "home" => {
            let _: Empty = self::args(args)?;
            to_json(home(u, now))
        }
        "sync" => {
            let _: Empty = self::args(args)?;
            let report = u.wallet.sync(now)?;
            if !report.new_access_events.is_empty() || report.new_entries > 0 {
                u.reindex();
            }
            let members = members(&u.wallet);
            // Unreadable preferences fall back to the defaults, which interrupt for everything that matters.
            let prefs = custodia_wallet::notices::NoticePrefs::load(u.wallet.dir()).unwrap_or_default();
            let notices =
                custodia_wallet::notices::access_notices(u.wallet.access_events(), &report.new_access_events, &prefs);
            to_json(SyncResult {
                checkpoint_size: report.checkpoint_size as i64,
                new_events: report.new_access_events.iter().map(|a| AccessRow::of(a, members)).collect(),
                notices: notices.iter().map(NoticeView::of).collect(),
                complete: report.complete,
                new_recovery_alerts: report.new_recovery_requests.iter().map(views::RecoveryAlert::of).collect(),
            })
        }
        _ => Err(unknown_command(command)),
    }
}

fn home(u: &Unlocked, now: Timestamp) -> Home {
    let w = &u.wallet;
    let members = members(w);
    let events = w.access_events();
    let mut active_grants: Vec<GrantView> = w
        .grants()
        .iter()
        .filter(|g| g.standing(now) == custodia_wallet::wallet::GrantStanding::Active)
        .map(|g| GrantView::of(g, members, u.log.grant_counts(&g.grant.id.to_string()), now))
        .collect();
    active_grants.sort_by_key(|g| g.not_after);
    let all = AccessFilter::default();
    let recent: Vec<usize> = u.log.positions(&all).take(RECENT_READS).collect();
    let recent_reads: Vec<AccessRow> = recent.iter().map(|&p| AccessRow::of(&events[p], members)).collect();
    let mut attention = Vec::new();
    match w.ledger() {
        None => attention.push(Attention {
            kind: AttentionKind::NotEnrolled,
            message:
                "This wallet is not connected to a ledger yet, so grants cannot be posted and reads cannot be seen."
                    .into(),
            grant_id: None,
            index: None,
        }),
        Some(l) if l.synced_through.is_none() && l.access_events.is_empty() && !w.grants().is_empty() => attention
            .push(Attention {
                kind: AttentionKind::NeverSynced,
                message: "The access log has not been checked against the ledger yet.".into(),
                grant_id: None,
                index: None,
            }),
        Some(_) => {}
    }
    if let Some(r) = w.retired() {
        attention.push(Attention {
            kind: AttentionKind::Retired,
            message: format!(
                "This wallet was recovered on another device on {}; this copy can no longer act for you.",
                r.at.to_string().chars().take(10).collect::<String>()
            ),
            grant_id: None,
            index: Some(r.index as i64),
        });
    }
    for a in w.recovery_alerts().iter().filter(|a| a.cancelled_at.is_none()) {
        attention.push(Attention {
            kind: AttentionKind::RecoveryRequest,
            message: "Someone asked your guardians to recover this wallet on another device. If it was not you, \
                      cancel it now."
                .into(),
            grant_id: None,
            index: Some(a.index as i64),
        });
    }
    for g in w.grants() {
        let id = g.grant.id.to_string();
        if g.grant_index.is_none()
            && g.revocation.is_none()
            && g.standing(now) == custodia_wallet::wallet::GrantStanding::Active
        {
            attention.push(Attention {
                kind: AttentionKind::Unposted,
                message: "A grant is signed but not on the ledger yet, so gateways will not honour it.".into(),
                grant_id: Some(id.clone()),
                index: None,
            });
        }
        if g.revocation.is_some() && g.revocation_index.is_none() && g.grant_index.is_some() {
            attention.push(Attention {
                kind: AttentionKind::Unposted,
                message: "A revocation is signed but not on the ledger yet: the grant still works until it is posted."
                    .into(),
                grant_id: Some(id.clone()),
                index: None,
            });
        }
        let left = g.grant.not_after.seconds_since(now);
        if g.standing(now) == custodia_wallet::wallet::GrantStanding::Active && left <= EXPIRING_SOON_SECONDS {
            attention.push(Attention {
                kind: AttentionKind::Expiring,
                message: format!(
                    "A grant to {} ends within a day.",
                    Party::of(&g.grant.grantee, members).name.unwrap_or_else(|| "a clinician".into())
                ),
                grant_id: Some(id),
                index: None,
            });
        }
    }
    // Break-glass reads and refused attempts of the last 30 days, newest first, at most ten.
    let since = AccessFilter { from: Some(ms(now) - 30 * 86_400_000), ..AccessFilter::default() };
    for p in u.log.positions(&since) {
        if attention.iter().filter(|a| matches!(a.kind, AttentionKind::BreakGlass | AttentionKind::Denied)).count()
            >= 10
        {
            break;
        }
        let e = events[p].event.statement();
        let (kind, message) = if e.break_glass {
            (
                AttentionKind::BreakGlass,
                format!("{} at {} used emergency access to your records.", e.reader_name, e.organisation),
            )
        } else if e.outcome == custodia_core::entry::Outcome::Denied {
            (
                AttentionKind::Denied,
                format!("{} at {} tried to read your records and was refused.", e.reader_name, e.organisation),
            )
        } else {
            continue;
        };
        attention.push(Attention {
            kind,
            message,
            grant_id: e.grant_id.map(|g| g.to_string()),
            index: Some(events[p].index as i64),
        });
    }
    Home { active_grants, recent_reads, attention }
}
