//! Grants: the list and one grant, people shared with before, a new grant and its preview at a hospital,
//! posting, revoking, the FHIR Consent export; and the patient's own records at a hospital.

use super::*;
use custodia_wallet::fhir_client::GatewayClient;
use custodia_wallet::own_records;

/// Runs one of this screen's commands.
pub(crate) fn run(command: &str, call: Call<'_>) -> Result<Value, AppError> {
    let Call { u, args, now, .. } = call;
    match command {
        "grants" => {
            let _: Empty = self::args(args)?;
            let mut views: Vec<GrantView> = u
                .wallet
                .grants()
                .iter()
                .map(|g| GrantView::of(g, members(&u.wallet), u.log.grant_counts(&g.grant.id.to_string()), now))
                .collect();
            views.sort_by_key(|v| std::cmp::Reverse(v.issued_at));
            to_json(views)
        }
        "grant" => {
            let IdArgs { id } = self::args(args)?;
            let id = grant_id(&id)?;
            let grant = grant_view(u, id, now)?;
            let filter = AccessFilter { grant_id: Some(id.to_string()), ..AccessFilter::default() };
            let events = u.wallet.access_events();
            let reads = u.log.positions(&filter).map(|p| AccessRow::of(&events[p], members(&u.wallet))).collect();
            to_json(GrantDetail { grant, reads })
        }
        "contacts" => {
            let _: Empty = self::args(args)?;
            let w = &u.wallet;
            let mut contacts: Vec<Contact> = members(w)
                .iter()
                .filter(|m| m.role != custodia_core::entry::Role::Gateway)
                .map(|m| contact_of(Party::member(m), w))
                .collect();
            contacts.sort_by_key(|c| std::cmp::Reverse(c.last_granted));
            to_json(contacts)
        }
        "resolve_contact" => {
            let TextArgs { text } = self::args(args)?;
            let text = text.trim();
            let key: SigningPublicKey = match text.parse() {
                Ok(key) => key,
                Err(_) => match QrPayload::decode(text) {
                    Ok(QrPayload::Contact(card)) => card.signing,
                    Ok(_) => return Err(AppError::bad_input("that Custodia QR code is not a contact card")),
                    Err(e) => {
                        return Err(AppError::bad_input(format!(
                            "that is neither a contact card nor a Custodia key: {e}"
                        )));
                    }
                },
            };
            if key == u.wallet.signing_key() {
                return Err(AppError::bad_input("that is this wallet's own contact card"));
            }
            let member = u.wallet.member(&key)?;
            if member.role == custodia_core::entry::Role::Gateway {
                return Err(AppError::bad_input(format!(
                    "{} is a gateway, not a clinician: gateways enforce grants but are not given them",
                    member.name
                )));
            }
            u.reindex();
            to_json(contact_of(Party::member(&member), &u.wallet))
        }
        "create_grant" => {
            let a: CreateGrantArgs = self::args(args)?;
            let request = grant_request(a)?;
            if u.wallet.ledger().is_none() {
                return Err(AppError::new(
                    ErrorCode::NotEnrolled,
                    "connect this wallet to a ledger first (Settings), so the grant can be posted",
                ));
            }
            // The grantee must be an enrolled member before anything is signed.
            u.wallet.member(&request.grantee)?;
            let grant = u.wallet.issue_grant(request, now)?;
            // Stored first, so a failed post leaves a grant the patient can post again from Home.
            u.wallet.post_grant(grant.id, now)?;
            to_json(grant_view(u, grant.id, now)?)
        }
        "preview_grant" => {
            let PreviewGrantArgs { gateway_url, grantee, scopes, labels, purpose } = self::args(args)?;
            let a = CreateGrantArgs {
                grantee,
                scopes,
                labels,
                purpose,
                duration_seconds: 3600,
                max_reads: None,
                note: None,
            };
            let request = grant_request(a)?;
            let client = GatewayClient::new(&gateway_url)?;
            let patient = u.wallet.service_identity();
            // Signed to be looked at only: never stored, never posted.
            let draft = request.sign(&patient, now)?;
            let types = own_records::gateway_types(&client)?;
            let records = own_records::fetch_own(&client, &patient, &types, now)?;
            to_json(PreviewView::of(client.base(), &own_records::preview(&draft, &records, now), records.len()))
        }
        "own_records" => {
            let GatewayArgs { gateway_url } = self::args(args)?;
            let client = GatewayClient::new(&gateway_url)?;
            let patient = u.wallet.service_identity();
            let types = own_records::gateway_types(&client)?;
            let records = own_records::fetch_own(&client, &patient, &types, now)?;
            let bundle = own_records::bundle(&records, now);
            to_json(Export {
                filename: "my-records.json".into(),
                content_type: "application/fhir+json".into(),
                text: serde_json::to_string_pretty(&bundle)
                    .map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?,
            })
        }
        "post_grant" => {
            let IdArgs { id } = self::args(args)?;
            let id = grant_id(&id)?;
            u.wallet.post_grant(id, now)?;
            to_json(grant_view(u, id, now)?)
        }
        "revoke_grant" => {
            let IdArgs { id } = self::args(args)?;
            let id = grant_id(&id)?;
            let held =
                u.wallet.grant(id).ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no grant {id}")))?;
            let (revoked, posted, on_ledger) =
                (held.revocation.is_some(), held.revocation_index.is_some(), held.grant_index.is_some());
            if !revoked {
                u.wallet.revoke_grant(id, now, "revoked by the patient")?;
            } else if posted {
                return Err(WalletError::AlreadyRevoked(id).into());
            }
            if on_ledger {
                u.wallet.post_revocation(id, now)?;
            }
            to_json(grant_view(u, id, now)?)
        }
        "export_consent" => {
            let IdArgs { id } = self::args(args)?;
            let id = grant_id(&id)?;
            let g = u.wallet.grant(id).ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no grant {id}")))?;
            let consent = to_fhir_consent(&g.grant);
            to_json(Export {
                filename: format!("custodia-consent-{id}.fhir.json"),
                content_type: "application/fhir+json".into(),
                text: serde_json::to_string_pretty(&consent).unwrap_or_default(),
            })
        }
        _ => Err(unknown_command(command)),
    }
}

pub(crate) fn grant_view(u: &Unlocked, id: GrantId, now: Timestamp) -> Result<GrantView, AppError> {
    let g = u.wallet.grant(id).ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no grant {id}")))?;
    Ok(GrantView::of(g, members(&u.wallet), u.log.grant_counts(&id.to_string()), now))
}

fn contact_of(party: Party, w: &Wallet) -> Contact {
    let key: Option<SigningPublicKey> = party.key.parse().ok();
    let last_granted = w
        .grants()
        .iter()
        .filter(|g| Some(g.grant.grantee) == key)
        .map(|g| ms(g.grant.issued_at))
        .fold(None, |a: Option<i64>, t| Some(a.map_or(t, |a| a.max(t))));
    let fingerprint = w
        .ledger()
        .and_then(|l| l.members.iter().find(|m| Some(m.key) == key))
        .map(|m| {
            custodia_core::qr::ContactCard { name: m.name.clone(), signing: m.key, boxing: m.box_key }
                .fingerprint()
                .to_string()
        })
        .unwrap_or_default();
    Contact { party, fingerprint, last_granted }
}

fn grant_request(a: CreateGrantArgs) -> Result<GrantRequest, AppError> {
    let grantee: SigningPublicKey = a
        .grantee
        .trim()
        .parse()
        .map_err(|_| AppError::bad_input("choose a clinician: the grantee key is not valid"))?;
    if a.scopes.is_empty() {
        return Err(AppError::bad_input("choose at least one kind of record to share"));
    }
    let scopes = a
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>().map_err(|e| AppError::bad_input(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_labels = a
        .labels
        .iter()
        .map(|l| l.parse::<SensitivityLabel>().map_err(|e| AppError::bad_input(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let purpose: PurposeOfUse =
        a.purpose.parse().map_err(|e: custodia_core::purpose::UnknownPurpose| AppError::bad_input(e.to_string()))?;
    if a.duration_seconds < 60 {
        return Err(AppError::bad_input("a grant must last at least a minute"));
    }
    custodia_core::grant::check_duration(a.duration_seconds)?;
    if a.max_reads == Some(0) {
        return Err(AppError::bad_input("a grant that allows no reads is not a grant; leave the limit empty instead"));
    }
    Ok(GrantRequest {
        grantee,
        scopes,
        allowed_labels,
        purpose,
        duration_seconds: a.duration_seconds,
        max_reads: a.max_reads,
        note: a.note.unwrap_or_default().trim().to_owned(),
    })
}
