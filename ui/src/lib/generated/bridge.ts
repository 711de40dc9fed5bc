// Generated from crates/custodia-app/src/views.rs by its tests (CUSTODIA_BLESS=1). Do not edit.

export type ErrorCode = "bad_input" | "no_wallet" | "wallet_exists" | "locked" | "wrong_passphrase" | "busy" | "not_enrolled" | "not_found" | "conflict" | "ledger_unreachable" | "ledger_refused" | "verification_failed" | "unauthorized" | "unknown_command" | "internal";
export type AppError = { code: ErrorCode, message: string, };
export type WalletState = "none" | "locked" | "unlocked";
export type Status = { state: WalletState, wallet_dir: string, default_ledger: string | null, auto_lock_minutes: number, 
/**
 * Only while unlocked.
 */
summary: Summary | null, };
export type Summary = { name: string, key: string, fingerprint: string, created_at: number, ledger: LedgerView | null, auto_lock_minutes: number, 
/**
 * A new device waiting for the patient's guardians: the app shows the recovery's progress, not Home.
 */
recovering: boolean, };
export type LedgerView = { url: string, checkpoint_size: number, synced_through: number | null, 
/**
 * The fingerprint of the network profile the wallet joined with (none: joined from a bare address,
 * nothing pinned).
 */
network: string | null, 
/**
 * The witnesses whose quorum every checkpoint needs.
 */
witnesses: Array<string>, };
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
 * On an emergency-card read, the reason the reader gave, in words.
 */
emergency_reason: string | null, 
/**
 * The records, in words ("your lab results (2 records)"; for a refused attempt, what was asked for).
 */
what: string, 
/**
 * Why an attempt was refused, in words (`reason` is the gateway's own text).
 */
why: string | null, 
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
checkpoint: string, path: Array<string>, verified: boolean, 
/**
 * The witnesses whose cosignatures on the checkpoint verified (empty: no witness policy).
 */
cosigned_by: Array<string>, 
/**
 * The same proof as a C2SP tlog-proof, to hand to someone else.
 */
tlog_proof: string, };
export type Export = { filename: string, content_type: string, text: string, };
export type Contact = { fingerprint: string, last_granted: number | null, key: string, name: string | null, organisation: string | null, role: string | null, verified: boolean, };
export type SyncResult = { checkpoint_size: number, new_events: Array<AccessRow>, 
/**
 * How each of `new_events` reaches the patient, in the same order.
 */
notices: Array<NoticeView>, complete: boolean, 
/**
 * Recovery requests for this wallet found in this sync and not cancelled: if the patient did not make
 * them, someone is trying to take the wallet over.
 */
new_recovery_alerts: Array<RecoveryAlert>, };
export type News = { latest: number | null, live: boolean, };
export type PreviewRecord = { words: string, reference: string, why: string | null, };
export type PreviewView = { gateway: string, total: number, released: Array<PreviewRecord>, hidden: Array<PreviewRecord>, };
export type NoticeView = { index: number, kind: 'break-glass' | 'sensitive' | 'refused' | 'new-reader' | 'routine' | 'recovery', delivery: 'instant' | 'summary' | 'never', 
/**
 * The event in a sentence, in plain words.
 */
text: string, };
export type NoticeChoice = { kind: 'break-glass' | 'sensitive' | 'refused' | 'new-reader' | 'routine', 
/**
 * What the kind is, for a settings screen.
 */
words: string, delivery: 'instant' | 'summary' | 'never', };
export type NoticePrefsView = { choices: Array<NoticeChoice>, };
export type Home = { active_grants: Array<GrantView>, recent_reads: Array<AccessRow>, attention: Array<Attention>, };
export type AttentionKind = "break_glass" | "denied" | "expiring" | "unposted" | "not_enrolled" | "never_synced" | "recovery_request" | "retired";
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
export type Guardian = { 
/**
 * The guardian's share number (1 to the number of guardians).
 */
index: number, name: string, key: string, 
/**
 * When the guardian's wallet acknowledged its share (unix ms).
 */
accepted_at: number | null, 
/**
 * When the guardian last proved it still holds a valid share (unix ms).
 */
proved_at: number | null, };
export type GuardianSet = { set_id: string, threshold: number, count: number, 
/**
 * How long guardians hold their shares back after a recovery request, for a veto.
 */
waiting_seconds: number, created_at: number, entry_index: number | null, 
/**
 * When the guardians were last asked to prove they hold their shares.
 */
challenged_at: number | null, guardians: Array<Guardian>, };
export type HeldShare = { patient: string, patient_name: string, ledger: string, set_id: string, index: number, threshold: number, count: number, received_at: number, 
/**
 * The patient has since chosen other guardians or rotated keys: this share opens nothing current.
 */
superseded: boolean, };
export type RecoveryAlert = { index: number, request_id: string, 
/**
 * The asking device's one-time key.
 */
device: string, asked_at: number, 
/**
 * Set once it was cancelled (from this device or another with the same key).
 */
cancelled_at: number | null, };
export type RetiredView = { index: number, at: number, successor: string, };
export type Guardians = { set: GuardianSet | null, held: Array<HeldShare>, 
/**
 * Oldest first; the open ones have no `cancelled_at`.
 */
alerts: Array<RecoveryAlert>, retired: RetiredView | null, 
/**
 * The proposed threshold for 2 to 10 guardians (index 0 is for 2): a majority.
 */
default_thresholds: Array<number>, default_waiting_seconds: number, max_waiting_seconds: number, };
export type GuardianCandidate = { name: string, key: string, fingerprint: string, 
/**
 * Named by a scanned contact card (else looked up on the ledger by key).
 */
from_card: boolean, };
export type SetGuardiansArgs = { contacts: Array<string>, 
/**
 * Default: a majority.
 */
threshold?: number, 
/**
 * Default: a day.
 */
waiting_seconds?: number, };
export type InboxRequestState = "awaiting_code" | "approved" | "released" | "cancelled" | "locked";
export type InboxRequest = { request_id: string, patient: string, patient_name: string, device: string, asked_at: number, 
/**
 * When the waiting period ends and an approved share may go out.
 */
release_at: number, state: InboxRequestState, };
export type BreakGlassRead = { 
/**
 * The access event's id.
 */
id: string, patient: string, patient_name: string, reader_name: string, organisation: string, at: number, outcome: AccessOutcome, 
/**
 * `Type/id` of each record read.
 */
resources: Array<string>, };
export type GuardianInbox = { shares: Array<HeldShare>, 
/**
 * Newest first.
 */
requests: Array<InboxRequest>, 
/**
 * Shares accepted in this run.
 */
accepted: number, 
/**
 * Checks answered in this run.
 */
proofs_sent: number, 
/**
 * Requests whose shares went out in this run.
 */
released: Array<string>, 
/**
 * As a patient: guardians' acknowledgements and proofs collected in this run.
 */
acknowledgements: number, 
/**
 * Emergency-card reads of the records of the people this wallet guards, newest first.
 */
break_glass: Array<BreakGlassRead>, 
/**
 * How many of them arrived in this run.
 */
new_break_glass: number, };
export type StartRecoveryArgs = { ledger_url: string, 
/**
 * The patient's signing key (on their contact card, or shown by any of their guardians).
 */
patient_key: string, passphrase: string, 
/**
 * The ledger's checkpoint key (otherwise trusted on first use).
 */
verifier_key?: string, };
export type RecoveryPhase = "waiting" | "ready" | "cancelled" | "superseded";
export type RecoveryProgress = { request_id: string, patient: string, ledger: string, 
/**
 * What the patient reads to each guardian: six digits, in two groups.
 */
code: string, entry_index: number, asked_at: number, 
/**
 * When the waiting period ends and guardians who approved release their shares.
 */
release_at: number, threshold: number, count: number, 
/**
 * Share numbers whose guardians approved (released ones included).
 */
approved: Array<number>, 
/**
 * Share numbers received.
 */
received: Array<number>, phase: RecoveryPhase, cancelled_at: number | null, };
export type RecoveryStarted = { summary: Summary, progress: RecoveryProgress, };
export type RecoveryFinished = { summary: Summary, 
/**
 * The key recovered (now retired in favour of `summary.key`).
 */
patient: string, grants: number, access_events: number, guardians: number, };
export type RecoveryCancelled = { cancelled: Array<string>, };
export type NetworkView = { fingerprint: string, ledger_url: string, authority: string, witnesses: Array<string>, 
/**
 * How many witnesses must vouch for each checkpoint, in words.
 */
quorum: string, 
/**
 * The profile's text, to pass to `join_network`.
 */
text: string, };

export type Command =
  | 'status'
  | 'create_wallet'
  | 'unlock'
  | 'lock'
  | 'enroll'
  | 'network_profile'
  | 'join_network'
  | 'set_ledger_url'
  | 'change_passphrase'
  | 'set_auto_lock'
  | 'notice_prefs'
  | 'set_notice_prefs'
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
  | 'preview_grant'
  | 'own_records'
  | 'sync'
  | 'wait_news'
  | 'access_log'
  | 'access_proof'
  | 'export_access_csv'
  | 'export_audit_bundle'
  | 'open_request'
  | 'answer_request'
  | 'create_emergency_card'
  | 'guardians'
  | 'guardian_contact'
  | 'set_guardians'
  | 'remove_guardian'
  | 'check_guardians'
  | 'guardian_inbox'
  | 'approve_recovery'
  | 'cancel_recovery'
  | 'start_recovery'
  | 'recovery_status'
  | 'finish_recovery'
  | 'abandon_recovery';
