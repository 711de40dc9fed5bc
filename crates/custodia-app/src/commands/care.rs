//! The Scan screen's access requests and the emergency card.

use super::*;
use crate::commands::grants::grant_view;

/// Runs one of this screen's commands.
pub(crate) fn run(command: &str, call: Call<'_>) -> Result<Value, AppError> {
    let Call { u, args, now, .. } = call;
    match command {
        "open_request" => {
            let TextArgs { text } = self::args(args)?;
            let signed = match QrPayload::decode(text.trim()) {
                Ok(QrPayload::AccessRequest(r)) => r,
                Ok(QrPayload::Contact(_)) => {
                    return Err(AppError::bad_input("that is a contact card: use it to grant access from New grant"));
                }
                Ok(QrPayload::EmergencyCard(_)) => {
                    return Err(AppError::bad_input("that is an emergency card, for emergency staff to scan"));
                }
                Ok(_) => return Err(AppError::bad_input("this kind of Custodia QR code is not a request")),
                Err(e) => return Err(AppError::bad_input(format!("not an access request: {e}"))),
            };
            let checked = u.wallet.check_access_request(&signed, now)?;
            let view = request_view(&checked);
            u.requests.retain(|r| r.request.id != checked.request.id);
            u.requests.push(checked);
            let excess = u.requests.len().saturating_sub(MAX_PENDING_REQUESTS);
            u.requests.drain(..excess);
            to_json(view)
        }
        "answer_request" => {
            let a: AnswerRequestArgs = self::args(args)?;
            let position = u.requests.iter().position(|r| r.request.id.to_string() == a.id).ok_or_else(|| {
                AppError::new(ErrorCode::NotFound, "no such request waiting for an answer; scan it again")
            })?;
            let checked = u.requests[position].clone();
            let approval = if a.approve {
                let scopes = match a.scopes {
                    Some(s) => s
                        .iter()
                        .map(|t| t.parse::<Scope>().map_err(|e| AppError::bad_input(e.to_string())))
                        .collect::<Result<Vec<_>, _>>()?,
                    None => checked.request.scopes.clone(),
                };
                Some((scopes, a.duration_seconds.unwrap_or(checked.request.duration_seconds)))
            } else {
                None
            };
            let grant = u.wallet.answer_access_request(&checked, approval, now)?;
            u.requests.remove(position);
            let grant = grant.map(|g| grant_view(u, g.id, now)).transpose()?;
            to_json(RequestAnswer { approved: a.approve, grant })
        }
        "create_emergency_card" => {
            let a: EmergencyCardArgs = self::args(args)?;
            let labels = a.labels.unwrap_or_default();
            let scopes = a
                .scopes
                .iter()
                .map(|t| t.parse::<Scope>().map_err(|e| AppError::bad_input(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            if scopes.is_empty() {
                return Err(AppError::bad_input("choose at least one kind of record for the card"));
            }
            let parsed_labels = labels
                .iter()
                .map(|t| t.parse::<SensitivityLabel>().map_err(|e| AppError::bad_input(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            custodia_core::grant::check_duration(a.duration_seconds)?;
            let name = a.name.unwrap_or_else(|| u.wallet.name().to_owned());
            let (card, grant, _) = u.wallet.create_emergency_card(scopes, parsed_labels, a.duration_seconds, now)?;
            let text = QrPayload::EmergencyCard(card).encode();
            let face = custodia_core::printable::CardFace {
                name,
                covers: custodia_core::printable::covered_words(&a.scopes, &labels),
                valid_until: grant.not_after.to_string().chars().take(10).collect(),
            };
            let render = |e: custodia_core::qr::QrError| AppError::bad_input(e.to_string());
            let view = EmergencyCardView {
                grant: grant_view(u, grant.id, now)?,
                svg: custodia_core::printable::card_svg(&text, &face).map_err(render)?,
                png_base64: data_encoding::BASE64
                    .encode(&custodia_core::printable::card_png(&text, &face).map_err(render)?),
                pdf_base64: data_encoding::BASE64
                    .encode(&custodia_core::printable::card_pdf(&text, &face).map_err(render)?),
            };
            to_json(view)
        }
        _ => Err(unknown_command(command)),
    }
}

/// Scanned requests the app keeps for an answer.
const MAX_PENDING_REQUESTS: usize = 8;

fn request_view(checked: &CheckedRequest) -> AccessRequestView {
    let (r, m) = (&checked.request, &checked.requester);
    AccessRequestView {
        id: r.id.to_string(),
        requester: Party::member(m),
        fingerprint: custodia_core::Fingerprint::of(&m.key, &m.box_key).to_string(),
        purpose: Code { code: r.purpose.code().to_owned(), display: r.purpose.display().to_owned() },
        scopes: r.scopes.iter().map(ToString::to_string).collect(),
        duration_seconds: r.duration_seconds,
        created_at: ms(r.created_at),
        expires_at: ms(r.expires_at()),
    }
}
