// A rough passphrase strength estimate for the onboarding and change-passphrase forms. It is guidance, not a
// guarantee: it counts characters and their kinds, discounts repeats, sequences, keyboard runs and common
// passwords or words, and turns the result into a score from 0 (very weak) to 4 (strong).

export type Strength = {
  score: 0 | 1 | 2 | 3 | 4;
  label: string;
  hint: string;
  /** The estimate in bits, for tests and the meter's width. */
  bits: number;
};

export const MIN_LENGTH = 10;
export const MIN_SCORE = 2;
export const LABELS = ['Very weak', 'Weak', 'Fair', 'Good', 'Strong'] as const;

/** A short list of the most common passwords and words in them (normalised: lower case, no leetspeak). */
export const COMMON: readonly string[] = [
  'password', 'passphrase', 'passwort', 'custodia', 'qwerty', 'qwertz', 'azerty', 'letmein', 'welcome',
  'admin', 'administrator', 'iloveyou', 'monkey', 'dragon', 'football', 'baseball', 'soccer', 'hockey',
  'sunshine', 'princess', 'trustno', 'master', 'shadow', 'secret', 'login', 'hello', 'freedom', 'whatever',
  'charlie', 'superman', 'batman', 'starwars', 'pokemon', 'computer', 'internet', 'summer', 'winter',
  'spring', 'autumn', 'michael', 'jennifer', 'jordan', 'hunter', 'ranger', 'buster', 'killer', 'george',
  'andrew', 'thomas', 'jessica', 'pepper', 'ginger', 'cookie', 'flower', 'orange', 'banana', 'chocolate',
  'liverpool', 'arsenal', 'chelsea', 'health', 'doctor', 'hospital', 'medical', 'patient', 'changeme',
  'default', 'qazwsx', 'abc123', 'access', 'mustang', 'matrix', 'blink', 'lovely', 'loveme', 'angel',
  'family', 'purple', 'silver', 'golden', 'samsung', 'apple', 'google', 'facebook', 'test', 'guest',
  'user', 'love', 'god', 'pass', 'wallet', 'bitcoin',
];

const KEYBOARD_ROWS = ['qwertyuiop', 'asdfghjkl', 'zxcvbnm', '1234567890', 'qwertzuiop', 'azertyuiop'];

const LEET: Record<string, string> = { '0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a', $: 's', '!': 'i' };

/** One entry per code point: lower case, leetspeak undone; anything else outside the BMP becomes one unit. */
function normChars(s: string): string[] {
  return [...s].map((c) => {
    const l = c.toLowerCase();
    const one = l.length === 1 ? l : c.length === 1 ? c : '\u0000';
    return LEET[one] ?? one;
  });
}

function normalise(s: string): string {
  return normChars(s).join('');
}

function poolSize(chars: string[]): number {
  let pool = 0;
  if (chars.some((c) => c >= 'a' && c <= 'z')) pool += 26;
  if (chars.some((c) => c >= 'A' && c <= 'Z')) pool += 26;
  if (chars.some((c) => c >= '0' && c <= '9')) pool += 10;
  if (chars.some((c) => c === ' ')) pool += 1;
  if (chars.some((c) => /[\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e]/.test(c))) pool += 33;
  if (chars.some((c) => c.codePointAt(0)! > 0x7e)) pool += 100;
  return Math.max(pool, 1);
}

function isSequenceStep(a: string, b: string): boolean {
  const d = b.toLowerCase().codePointAt(0)! - a.toLowerCase().codePointAt(0)!;
  if (d === 1 || d === -1) return true;
  const pair = (a + b).toLowerCase();
  return KEYBOARD_ROWS.some((row) => row.includes(pair) || [...row].reverse().join('').includes(pair));
}

type Findings = { effective: number; common: string | null; repeats: boolean; sequences: boolean };

function analyse(pw: string): Findings {
  const chars = [...pw];
  const norm = normChars(pw);
  // Positions covered by a common word count as one character each word.
  const weight = chars.map(() => 1);
  let common: string | null = null;
  const normText = norm.join('');
  for (const word of COMMON) {
    if (word.length < 4) continue;
    let at = normText.indexOf(word);
    while (at >= 0) {
      common ??= word;
      for (let k = at; k < at + word.length; k++) weight[k] = k === at ? 1.5 : 0;
      at = normText.indexOf(word, at + word.length);
    }
  }
  let repeats = false;
  let sequences = false;
  for (let i = 1; i < chars.length; i++) {
    if (weight[i] === 0) continue;
    if (norm[i] === norm[i - 1]) {
      weight[i] = Math.min(weight[i], 0.25);
      if (i >= 2 && norm[i] === norm[i - 2]) repeats = true;
    } else if (isSequenceStep(chars[i - 1], chars[i])) {
      weight[i] = Math.min(weight[i], 0.25);
      if (i >= 2 && isSequenceStep(chars[i - 2], chars[i - 1])) sequences = true;
    }
  }
  // A part seen before (at least 3 characters) counts little: "hellohello" is hardly stronger than "hello".
  for (let i = 3; i < chars.length; i++) {
    let best = 0;
    for (let j = 0; j < i; j++) {
      let l = 0;
      while (i + l < norm.length && j + l < i && norm[j + l] === norm[i + l]) l++;
      best = Math.max(best, l);
    }
    if (best >= 3) {
      repeats = true;
      for (let k = i; k < i + best; k++) weight[k] = Math.min(weight[k], k === i ? 0.5 : 0);
      i += best - 1;
    }
  }
  const effective = weight.reduce((a, b) => a + b, 0);
  return { effective, common, repeats, sequences };
}

/** The strength of a passphrase: a score 0..4, its label and one hint. */
export function strength(pw: string): Strength {
  const chars = [...pw];
  if (chars.length === 0) {
    return { score: 0, label: LABELS[0], bits: 0, hint: `Use at least ${MIN_LENGTH} characters. A few unrelated words work well.` };
  }
  const f = analyse(pw);
  const bits = Math.round(f.effective * Math.log2(poolSize(chars)));
  let score: Strength['score'] = bits < 30 ? 0 : bits < 45 ? 1 : bits < 60 ? 2 : bits < 80 ? 3 : 4;
  const whole = normalise(pw).replace(/[\d\W_]+$/u, '');
  if (COMMON.includes(whole) || COMMON.includes(normalise(pw))) score = 0;
  if (chars.length < 8) score = Math.min(score, 1) as Strength['score'];

  let hint: string;
  if (score >= 3 && chars.length >= MIN_LENGTH) hint = score === 4 ? 'Strong. Keep it somewhere safe: nobody can reset it for you.' : 'Good. Another word would make it stronger still.';
  else if (f.common) hint = `Avoid common words and passwords such as “${f.common}”.`;
  else if (f.repeats) hint = 'Avoid repeated characters or repeating the same part.';
  else if (f.sequences) hint = 'Avoid sequences such as “abc”, “123” or “qwerty”.';
  else if (chars.length < MIN_LENGTH) hint = `Use at least ${MIN_LENGTH} characters.`;
  else hint = 'Add another unrelated word or two to make it stronger.';
  return { score, label: LABELS[score], hint, bits };
}

/** Whether a passphrase is good enough to protect a wallet: at least 10 characters and a score of 2. */
export function acceptable(pw: string): boolean {
  return [...pw].length >= MIN_LENGTH && strength(pw).score >= MIN_SCORE;
}

/** Why a new passphrase (and its confirmation) cannot be used yet, or null when it can. */
export function newPassphraseProblem(pw: string, confirm: string): string | null {
  if ([...pw].length < MIN_LENGTH) return `The passphrase needs at least ${MIN_LENGTH} characters.`;
  if (strength(pw).score < MIN_SCORE) return 'The passphrase is too easy to guess. Try adding another word.';
  if (pw !== confirm) return 'The two passphrases do not match.';
  return null;
}
