//! The access log: pages and filters, an entry's proof, CSV and FHIR AuditEvent exports.

use super::*;

/// Runs one of this screen's commands.
pub(crate) fn run(command: &str, call: Call<'_>) -> Result<Value, AppError> {
    let Call { u, args, .. } = call;
    match command {
        "access_log" => {
            let LogArgs { filter, offset, limit } = self::args(args)?;
            if !(1..=MAX_PAGE).contains(&limit) {
                return Err(AppError::bad_input(format!("limit must be 1 to {MAX_PAGE}")));
            }
            to_json(u.log.page(&filter, offset, limit, u.wallet.access_events(), members(&u.wallet)))
        }
        "access_proof" => {
            let IndexArgs { index } = self::args(args)?;
            let shown = u.wallet.access_inclusion(index)?;
            to_json(Proof {
                index: shown.index as i64,
                leaf_hash: shown.leaf.to_string(),
                checkpoint_size: shown.checkpoint.size as i64,
                root: shown.checkpoint.root.to_string(),
                checkpoint: shown.checkpoint.note.clone(),
                path: shown.path.iter().map(ToString::to_string).collect(),
                verified: true,
                tlog_proof: shown.to_tlog_proof(),
                cosigned_by: shown.cosigned_by,
            })
        }
        "export_access_csv" => {
            let FilterArgs { filter } = self::args(args)?;
            let positions: Vec<usize> = u.log.positions(&filter).collect();
            to_json(log::export_csv(&positions, u.wallet.access_events(), members(&u.wallet)))
        }
        "export_audit_bundle" => {
            let FilterArgs { filter } = self::args(args)?;
            let positions: Vec<usize> = u.log.positions(&filter).collect();
            to_json(log::export_audit_bundle(&positions, u.wallet.access_events()))
        }
        _ => Err(unknown_command(command)),
    }
}
