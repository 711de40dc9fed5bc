// Which part of the app is shown (onboarding, unlock, the unlocked app) and the wallet's summary.

import { command, errorMessage, onLocked, toBridgeError } from './bridge';
import { navigate } from './router.svelte';
import { clearToasts } from './toasts.svelte';
import type { RecoveryProgress, Status, Summary } from './types';

export type Phase =
  | 'loading'
  /** The bridge could not be reached or refused this page. */
  | 'disconnected'
  /** No wallet yet: onboarding, first step. */
  | 'none'
  /** Wallet just created and unlocked: onboarding, ledger step. */
  | 'onboarding-ledger'
  | 'locked'
  /** Unlocked, a new device waiting for the patient's guardians: the recovery screen, not Home. */
  | 'recovering'
  | 'unlocked';

class Session {
  phase = $state<Phase>('loading');
  status = $state<Status | null>(null);
  summary = $state<Summary | null>(null);
  /** Why the page cannot talk to the app (phase `disconnected`). */
  problem = $state('');
  /** Shown on the unlock screen, e.g. "Locked after 10 minutes without activity." */
  lockNotice = $state('');
  /** The recovery's progress as `start_recovery` gave it (the recovery screen refreshes it). */
  recovery = $state<RecoveryProgress | null>(null);
}

export const session = new Session();

/** The auto-lock limit in force, in minutes. */
export function autoLockMinutes(): number {
  return session.summary?.auto_lock_minutes ?? session.status?.auto_lock_minutes ?? 10;
}

export async function loadStatus(): Promise<void> {
  try {
    const status = await command('status');
    session.status = status;
    session.problem = '';
    if (status.state === 'unlocked' && status.summary) {
      session.summary = status.summary;
      session.phase = status.summary.recovering ? 'recovering' : 'unlocked';
    } else if (status.state === 'none') {
      session.summary = null;
      session.phase = 'none';
    } else {
      session.summary = null;
      session.phase = 'locked';
    }
  } catch (e) {
    const err = toBridgeError(e);
    session.problem = err.message;
    session.phase = 'disconnected';
  }
}

/** After `unlock` (and a finished recovery): the landing page is Home, or the recovery screen on a new device. */
export function enterUnlocked(summary: Summary): void {
  session.summary = summary;
  session.lockNotice = '';
  if (summary.recovering) {
    session.phase = 'recovering';
    return;
  }
  session.recovery = null;
  session.phase = 'unlocked';
  navigate('#/home');
}

/** After `start_recovery`: the new device's wallet is unlocked and waits for the guardians. */
export function recoveryStarted(summary: Summary, progress: RecoveryProgress): void {
  session.summary = summary;
  session.recovery = progress;
  session.lockNotice = '';
  session.phase = 'recovering';
}

/** After `abandon_recovery`: the device's wallet is gone, back to a first run. */
export function recoveryAbandoned(): void {
  session.summary = null;
  session.recovery = null;
  session.phase = 'none';
}

/** After `create_wallet`: the wallet is unlocked, the ledger step comes next. */
export function walletCreated(summary: Summary): void {
  session.summary = summary;
  session.phase = 'onboarding-ledger';
}

export function updateSummary(summary: Summary): void {
  session.summary = summary;
}

/** Shows the unlock screen (the wallet is already locked on the Rust side). */
export function becameLocked(notice = ''): void {
  if (session.phase === 'none' || session.phase === 'disconnected') return;
  session.summary = null;
  session.lockNotice = notice;
  session.phase = 'locked';
  clearToasts();
}

/** Locks the wallet and shows the unlock screen, even if the lock call fails (the UI forgets either way). */
export async function lockNow(notice = ''): Promise<void> {
  try {
    await command('lock');
  } catch (e) {
    console.warn('lock:', errorMessage(e));
  }
  becameLocked(notice);
}

/** Any `locked` error from any command routes to the unlock screen. */
export function installLockedHandler(): void {
  onLocked(() => {
    if (session.phase === 'unlocked' || session.phase === 'onboarding-ledger' || session.phase === 'recovering') {
      becameLocked('Your wallet was locked. Enter your passphrase to continue.');
    }
  });
}
