// Generated from crates/custodia-app/src/views.rs by its tests (CUSTODIA_BLESS=1). Do not edit.

export type ErrorCode = "bad_input" | "no_wallet" | "wallet_exists" | "locked" | "wrong_passphrase" | "busy" | "not_enrolled" | "not_found" | "conflict" | "ledger_unreachable" | "ledger_refused" | "verification_failed" | "unauthorized" | "unknown_command" | "internal";
export type AppError = { code: ErrorCode, message: string, };
export type WalletState = "none" | "locked" | "unlocked";
export type Status = { state: WalletState, wallet_dir: string, default_ledger: string | null, auto_lock_minutes: number, 
/**
 * Only while unlocked.
 */
summary: Summary | null, };
export type Summary = { name: string, key: string, fingerprint: string, created_at: number, ledger: LedgerView | null, auto_lock_minutes: number, };
export type LedgerView = { url: string, checkpoint_size: number, synced_through: number | null, };
export type Party = { key: string, name: string | null, organisation: string | null, role: string | null, verified: boolean, };
export type Code = { code: string, display: string, };
export type GrantStatus = "active" | "expired" | "revoked";
export type GrantView = { id: string, grantee: Party, scopes: Array<string>, labels: Array<Code>, purpose: Code, note: string, issued_at: number, not_before: number, not_after: number, max_reads: number | null, status: GrantStatus, grant_index: number | null, revocation_index: number | null, revoked_at: number | null, 
/**
 * Reads the wallet has seen logged under this grant, and refused attempts.
 */
reads: number, denied: number, 
/**
 * A standing break-glass grant printed on an emergency card: its grantee is the card, and any
 * enrolled emergency provider holding the card may read under it.
 */
emergency_card: boolean, };
export type GrantDetail = { grant: GrantView, reads: Array<AccessRow>, };
export type Resource = { type: string, id: string, labels: Array<string>, category: string | null, };
export type AccessOutcome = "allowed" | "denied";
export type AccessRow = { index: number, at: number, reader: Party, organisation: string, gateway: string, purpose: Code, outcome: AccessOutcome, break_glass: boolean, request: string, resources: Array<Resource>, categories: Array<string>, labels: Array<string>, grant_id: string | null, reason: string | null, 
/**
 * Every event the wallet holds was proven into a checkpoint it checked for consistency.
 */
verified: boolean, };
export type AccessFilter = { 
/**
 * A reader's key.
 */
reader?: string, organisation?: string, category?: string, 
/**
 * Unix ms, inclusive.
 */
from?: number, 
/**
 * Unix ms, exclusive.
 */
to?: number, outcome?: AccessOutcome, break_glass?: boolean, grant_id?: string, 
/**
 * Case-insensitive, in the reader's name, the organisation and the request.
 */
text?: string, };
export type Histogram = { from: number, bucket_ms: number, allowed: Array<number>, denied: Array<number>, break_glass: Array<number>, };
export type AccessPage = { total: number, total_all: number, offset: number, 
/**
 * Newest first.
 */
rows: Array<AccessRow>, 
/**
 * Facets over every event, for the filter menus.
 */
readers: Array<Party>, organisations: Array<string>, categories: Array<string>, 
/**
 * Over the filtered events.
 */
histogram: Histogram, };
export type Proof = { index: number, leaf_hash: string, checkpoint_size: number, root: string, 
/**
 * The signed checkpoint note.
 */
checkpoint: string, path: Array<string>, verified: boolean, };
export type Export = { filename: string, content_type: string, text: string, };
export type Contact = { fingerprint: string, last_granted: number | null, key: string, name: string | null, organisation: string | null, role: string | null, verified: boolean, };
export type SyncResult = { checkpoint_size: number, new_events: Array<AccessRow>, complete: boolean, };
export type Home = { active_grants: Array<GrantView>, recent_reads: Array<AccessRow>, attention: Array<Attention>, };
export type AttentionKind = "break_glass" | "denied" | "expiring" | "unposted" | "not_enrolled" | "never_synced";
export type Attention = { kind: AttentionKind, message: string, grant_id: string | null, index: number | null, };
export type QrView = { text: string, svg: string, };
export type Decoded = { text: string, };
export type AccessRequestView = { 
/**
 * The request's id, to answer it by.
 */
id: string, requester: Party, fingerprint: string, purpose: Code, scopes: Array<string>, duration_seconds: number, 
/**
 * Unix ms.
 */
created_at: number, 
/**
 * Unix ms: the request can be answered until then.
 */
expires_at: number, };
export type AnswerRequestArgs = { id: string, approve: boolean, scopes?: Array<string>, duration_seconds?: number, };
export type RequestAnswer = { approved: boolean, grant: GrantView | null, };
export type EmergencyCardArgs = { scopes: Array<string>, labels?: Array<string>, duration_seconds: number, 
/**
 * The name printed on the card (default: the wallet's).
 */
name?: string, };
export type EmergencyCardView = { grant: GrantView, svg: string, png_base64: string, pdf_base64: string, };

export type Command =
  | 'status'
  | 'create_wallet'
  | 'unlock'
  | 'lock'
  | 'enroll'
  | 'set_ledger_url'
  | 'change_passphrase'
  | 'set_auto_lock'
  | 'contact_qr'
  | 'purposes'
  | 'home'
  | 'grants'
  | 'grant'
  | 'contacts'
  | 'resolve_contact'
  | 'scan_image'
  | 'create_grant'
  | 'post_grant'
  | 'revoke_grant'
  | 'export_consent'
  | 'sync'
  | 'access_log'
  | 'access_proof'
  | 'export_access_csv'
  | 'export_audit_bundle'
  | 'open_request'
  | 'answer_request'
  | 'create_emergency_card';
