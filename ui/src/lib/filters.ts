// The access log's filter form: its state, the AccessFilter sent to `access_log`, and its place in the URL
// (`#/log?outcome=denied&from=2025-03-01`) so a filtered view survives a reload and can be linked to.

import type { AccessFilter } from './types';

export type Outcome = '' | 'allowed' | 'denied';

export type FilterForm = {
  /** A reader key, or '' for anyone. */
  reader: string;
  organisation: string;
  category: string;
  /** `YYYY-MM-DD` (as a date input gives it), or ''. */
  from: string;
  /** `YYYY-MM-DD`, the last day included, or ''. */
  to: string;
  outcome: Outcome;
  break_glass: boolean;
  text: string;
  grant_id: string;
};

export function emptyForm(): FilterForm {
  return {
    reader: '',
    organisation: '',
    category: '',
    from: '',
    to: '',
    outcome: '',
    break_glass: false,
    text: '',
    grant_id: '',
  };
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Local midnight at the start of a `YYYY-MM-DD` day (plus `addDays`), or undefined when not a real date. */
export function dayStart(value: string, addDays = 0): number | undefined {
  const m = DATE.exec(value);
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(y, mo - 1, d);
  if (date.getFullYear() !== y || date.getMonth() !== mo - 1 || date.getDate() !== d) return undefined;
  date.setDate(date.getDate() + addDays);
  return date.getTime();
}

/** `YYYY-MM-DD` of a time, in local time. */
export function toDateInput(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** The filter for `access_log`: empty fields are left out; `to` is the exclusive end of its day. */
export function formToFilter(form: FilterForm): AccessFilter {
  const f: AccessFilter = {};
  if (form.reader) f.reader = form.reader;
  if (form.organisation) f.organisation = form.organisation;
  if (form.category) f.category = form.category;
  const from = dayStart(form.from);
  if (from !== undefined) f.from = from;
  const to = dayStart(form.to, 1);
  if (to !== undefined) f.to = to;
  if (form.outcome === 'allowed' || form.outcome === 'denied') f.outcome = form.outcome;
  if (form.break_glass) f.break_glass = true;
  if (form.grant_id) f.grant_id = form.grant_id;
  const text = form.text.trim();
  if (text) f.text = text;
  return f;
}

export function isEmptyForm(form: FilterForm): boolean {
  return Object.keys(formToFilter(form)).length === 0;
}

// URL keys, short and stable: changing one breaks saved links.
const KEYS = {
  reader: 'reader',
  organisation: 'org',
  category: 'category',
  from: 'from',
  to: 'to',
  outcome: 'outcome',
  break_glass: 'bg',
  text: 'q',
  grant_id: 'grant',
} as const;

/** The form as a query string (no leading `?`), only the fields that filter, in a fixed order. */
export function formToQuery(form: FilterForm): string {
  const p = new URLSearchParams();
  if (form.reader) p.set(KEYS.reader, form.reader);
  if (form.organisation) p.set(KEYS.organisation, form.organisation);
  if (form.category) p.set(KEYS.category, form.category);
  if (dayStart(form.from) !== undefined) p.set(KEYS.from, form.from);
  if (dayStart(form.to) !== undefined) p.set(KEYS.to, form.to);
  if (form.outcome) p.set(KEYS.outcome, form.outcome);
  if (form.break_glass) p.set(KEYS.break_glass, '1');
  if (form.grant_id) p.set(KEYS.grant_id, form.grant_id);
  if (form.text.trim()) p.set(KEYS.text, form.text.trim());
  return p.toString();
}

/** A query string (with or without `?`) back into a form; anything malformed is ignored. */
export function queryToForm(query: string): FilterForm {
  const p = new URLSearchParams(query.startsWith('?') ? query.slice(1) : query);
  const form = emptyForm();
  form.reader = p.get(KEYS.reader) ?? '';
  form.organisation = p.get(KEYS.organisation) ?? '';
  form.category = p.get(KEYS.category) ?? '';
  const from = p.get(KEYS.from) ?? '';
  if (dayStart(from) !== undefined) form.from = from;
  const to = p.get(KEYS.to) ?? '';
  if (dayStart(to) !== undefined) form.to = to;
  const outcome = p.get(KEYS.outcome);
  if (outcome === 'allowed' || outcome === 'denied') form.outcome = outcome;
  const bg = p.get(KEYS.break_glass);
  form.break_glass = bg === '1' || bg === 'true';
  form.text = p.get(KEYS.text) ?? '';
  form.grant_id = p.get(KEYS.grant_id) ?? '';
  return form;
}

/** How many fields filter (for "3 filters on"). */
export function activeFilterCount(form: FilterForm): number {
  return Object.keys(formToFilter(form)).length;
}
