// The types of the app bridge contract. The contract's types are generated from the Rust crate
// `custodia-app` (src/views.rs) into ./generated/bridge.ts and only re-exported here; what is added here is
// UI-side: each command's arguments and result, checked against the generated list of commands.
// Import these types from this file only. Timestamps are unix milliseconds.

export type {
  AccessFilter,
  AccessOutcome,
  AccessPage,
  AccessRequestView,
  AccessRow,
  AnswerRequestArgs,
  AppError,
  Attention,
  AttentionKind,
  BreakGlassRead,
  Code,
  Contact,
  EmergencyCardArgs,
  EmergencyCardView,
  ErrorCode,
  Export,
  GrantDetail,
  GrantStatus,
  GrantView,
  Guardian,
  GuardianCandidate,
  GuardianInbox,
  GuardianSet,
  Guardians,
  HeldShare,
  Histogram,
  Home,
  InboxRequest,
  InboxRequestState,
  LedgerView,
  NetworkView,
  Party,
  Proof,
  RecoveryAlert,
  RecoveryCancelled,
  RecoveryFinished,
  RecoveryPhase,
  RecoveryProgress,
  RecoveryStarted,
  RequestAnswer,
  Resource,
  RetiredView,
  SetGuardiansArgs,
  StartRecoveryArgs,
  Status,
  Summary,
  SyncResult,
  News,
  PreviewRecord,
  PreviewView,
  NoticeView,
  NoticeChoice,
  NoticePrefsView,
  WalletState,
} from './generated/bridge';

import type {
  NetworkView,
  AccessFilter,
  AccessPage,
  AccessRequestView,
  AnswerRequestArgs,
  Code,
  Command,
  Contact,
  Decoded,
  EmergencyCardArgs,
  EmergencyCardView,
  Export,
  GrantDetail,
  GrantView,
  GuardianCandidate,
  GuardianInbox,
  Guardians,
  Home,
  InboxRequest,
  Proof,
  QrView,
  RecoveryCancelled,
  RecoveryFinished,
  RecoveryProgress,
  RecoveryStarted,
  RequestAnswer,
  SetGuardiansArgs,
  StartRecoveryArgs,
  Status,
  Summary,
  SyncResult,
  News,
  PreviewView,
  NoticeChoice,
  NoticePrefsView,
} from './generated/bridge';

/** `contact_qr`: the wallet's contact card, as QR text and SVG. */
export type ContactQr = QrView;
/** `scan_image`: the text decoded from a QR picture. */
export type ScannedText = Decoded;
export type Empty = Record<string, never>;

export type CreateGrantArgs = {
  grantee: string;
  scopes: string[];
  labels: string[];
  purpose: string;
  duration_seconds: number;
  max_reads?: number;
  note?: string;
};

/** Every command: its arguments and its result. */
export type Commands = {
  status: { args: Empty; result: Status };
  create_wallet: { args: { name: string; passphrase: string }; result: Summary };
  unlock: { args: { passphrase: string }; result: Summary };
  lock: { args: Empty; result: Empty };
  enroll: { args: { ledger_url: string }; result: Summary };
  network_profile: { args: { profile: string }; result: NetworkView };
  join_network: { args: { profile: string }; result: Summary };
  set_ledger_url: { args: { ledger_url: string }; result: Summary };
  change_passphrase: { args: { current: string; new: string }; result: Empty };
  set_auto_lock: { args: { minutes: number }; result: Summary };
  notice_prefs: { args: Empty; result: NoticePrefsView };
  set_notice_prefs: { args: { kind: NoticeChoice['kind']; delivery: NoticeChoice['delivery'] }; result: NoticePrefsView };
  contact_qr: { args: Empty; result: ContactQr };
  purposes: { args: Empty; result: Code[] };
  home: { args: Empty; result: Home };
  grants: { args: Empty; result: GrantView[] };
  grant: { args: { id: string }; result: GrantDetail };
  contacts: { args: Empty; result: Contact[] };
  resolve_contact: { args: { text: string }; result: Contact };
  scan_image: { args: { image_base64: string }; result: ScannedText };
  create_grant: { args: CreateGrantArgs; result: GrantView };
  post_grant: { args: { id: string }; result: GrantView };
  revoke_grant: { args: { id: string }; result: GrantView };
  export_consent: { args: { id: string }; result: Export };
  preview_grant: {
    args: { gateway_url: string; grantee: string; scopes: string[]; labels: string[]; purpose: string };
    result: PreviewView;
  };
  own_records: { args: { gateway_url: string }; result: Export };
  sync: { args: Empty; result: SyncResult };
  wait_news: { args: { after: number | null; wait_ms: number }; result: News };
  access_log: { args: { filter: AccessFilter; offset: number; limit: number }; result: AccessPage };
  access_proof: { args: { index: number }; result: Proof };
  export_access_csv: { args: { filter: AccessFilter }; result: Export };
  export_audit_bundle: { args: { filter: AccessFilter }; result: Export };
  open_request: { args: { text: string }; result: AccessRequestView };
  answer_request: { args: AnswerRequestArgs; result: RequestAnswer };
  create_emergency_card: { args: EmergencyCardArgs; result: EmergencyCardView };
  guardians: { args: Empty; result: Guardians };
  guardian_contact: { args: { text: string }; result: GuardianCandidate };
  set_guardians: { args: SetGuardiansArgs; result: Guardians };
  remove_guardian: { args: { key: string }; result: Guardians };
  check_guardians: { args: Empty; result: Guardians };
  guardian_inbox: { args: { ledger?: string }; result: GuardianInbox };
  approve_recovery: { args: { request_id: string; code: string }; result: InboxRequest };
  cancel_recovery: { args: { request_id?: string }; result: RecoveryCancelled };
  start_recovery: { args: StartRecoveryArgs; result: RecoveryStarted };
  recovery_status: { args: Empty; result: RecoveryProgress };
  finish_recovery: { args: Empty; result: RecoveryFinished };
  abandon_recovery: { args: Empty; result: Empty };
};

export type CommandName = keyof Commands;

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
/** Does not compile when the commands here and the generated list of commands differ. */
export type CommandsMatchGenerated = Assert<Same<CommandName, Command>>;
