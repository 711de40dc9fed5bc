// The plain-words catalogue: what a patient ticks ("Lab results") and what a grant says (SMART App Launch v2
// scopes, HL7 sensitivity labels). Ordinary categories add scopes; sensitive categories add labels, which
// let records that carry them be seen within the chosen categories (they stay hidden unless named).

export type Category = {
  id: string;
  /** Plain words, capitalised, as in a list of checkboxes. */
  label: string;
  /** Lower case, for use inside a sentence ("read your lab results"). */
  phrase: string;
  description: string;
  scopes: readonly string[];
};

export type SensitiveCategory = {
  id: string;
  label: string;
  phrase: string;
  description: string;
  labels: readonly string[];
};

export const CATEGORIES: readonly Category[] = [
  {
    id: 'allergies',
    label: 'Allergies',
    phrase: 'allergies',
    description: 'Allergies and intolerances, such as to medicines or foods.',
    scopes: ['patient/AllergyIntolerance.rs'],
  },
  {
    id: 'medications',
    label: 'Medications',
    phrase: 'medications',
    description: 'Prescriptions and the medicines you take.',
    scopes: ['patient/MedicationRequest.rs', 'patient/MedicationStatement.rs'],
  },
  {
    id: 'conditions',
    label: 'Conditions',
    phrase: 'conditions',
    description: 'Diagnoses and health problems.',
    scopes: ['patient/Condition.rs'],
  },
  {
    id: 'lab',
    label: 'Lab results',
    phrase: 'lab results',
    description: 'Blood tests and other laboratory results and reports.',
    scopes: ['patient/Observation.rs?category=laboratory', 'patient/DiagnosticReport.rs?category=LAB'],
  },
  {
    id: 'imaging',
    label: 'Imaging',
    phrase: 'imaging',
    description: 'X-rays, scans and their reports.',
    scopes: ['patient/DiagnosticReport.rs?category=RAD', 'patient/ImagingStudy.rs'],
  },
  {
    id: 'notes',
    label: 'Clinical notes',
    phrase: 'clinical notes',
    description: 'Letters, visit notes and other documents.',
    scopes: ['patient/DocumentReference.rs'],
  },
  {
    id: 'immunizations',
    label: 'Immunizations',
    phrase: 'immunizations',
    description: 'Vaccinations you have had.',
    scopes: ['patient/Immunization.rs'],
  },
  {
    id: 'vitals',
    label: 'Vital signs',
    phrase: 'vital signs',
    description: 'Blood pressure, pulse, weight, height and similar measurements.',
    scopes: ['patient/Observation.rs?category=vital-signs'],
  },
];

/**
 * Narrower entries than the catalogue's, not offered when sharing with a clinician: the emergency card
 * offers them, and a grant that holds their scopes (and not a whole catalogue category) is worded with them.
 */
export const BLOOD_TYPE: Category = {
  id: 'blood-type',
  label: 'Blood type',
  phrase: 'blood type',
  description: 'Your blood group and Rh type, for a transfusion.',
  scopes: ['patient/Observation.rs?code=http://loinc.org|882-1'],
};

/** Lab results without the reports (the catalogue's `lab` also covers the DiagnosticReports). */
export const LAB_RESULTS: Category = {
  id: 'lab-results',
  label: 'Lab results',
  phrase: 'lab results',
  description: 'Results of blood tests and other laboratory tests.',
  scopes: ['patient/Observation.rs?category=laboratory'],
};

export const NARROW_CATEGORIES: readonly Category[] = [BLOOD_TYPE, LAB_RESULTS];

export const SENSITIVE_CATEGORIES: readonly SensitiveCategory[] = [
  {
    id: 'mental-health',
    label: 'Mental health',
    phrase: 'mental health records',
    description: 'Psychiatry, psychotherapy and behavioural health.',
    labels: ['PSY', 'MH', 'BH', 'PSYTHPN'],
  },
  {
    id: 'substance-use',
    label: 'Substance use',
    phrase: 'substance use records',
    description: 'Alcohol, drug and opioid use and treatment.',
    labels: ['ETH', 'ETHUD', 'SUD', 'OPIOIDUD'],
  },
  {
    id: 'hiv',
    label: 'HIV',
    phrase: 'HIV records',
    description: 'HIV tests, status and treatment.',
    labels: ['HIV'],
  },
  {
    id: 'sexual-reproductive',
    label: 'Sexual and reproductive health',
    phrase: 'sexual and reproductive health records',
    description: 'Sexual health, sexually transmitted infections and pregnancy.',
    labels: ['SEX', 'STD', 'PREGNANT'],
  },
  {
    id: 'abuse-violence',
    label: 'Abuse and violence',
    phrase: 'records about abuse and violence',
    description: 'Domestic or sexual violence and military sexual trauma.',
    labels: ['SDV', 'MST'],
  },
  {
    id: 'genetic',
    label: 'Genetic',
    phrase: 'genetic records',
    description: 'Genetic tests and inherited conditions.',
    labels: ['GDIS'],
  },
];

const byId = new Map<string, Category | SensitiveCategory>(
  [...CATEGORIES, ...SENSITIVE_CATEGORIES].map((c) => [c.id, c]),
);

export function isSensitive(id: string): boolean {
  return SENSITIVE_CATEGORIES.some((c) => c.id === id);
}

/** What a grant needs for a set of ticked category ids: scopes and labels in catalogue order, no repeats. */
export function selectionToGrant(selected: Iterable<string>): { scopes: string[]; labels: string[] } {
  const ids = new Set(selected);
  for (const id of ids) if (!byId.has(id)) throw new Error(`unknown category: ${id}`);
  const scopes: string[] = [];
  const labels: string[] = [];
  for (const c of CATEGORIES) if (ids.has(c.id)) for (const s of c.scopes) if (!scopes.includes(s)) scopes.push(s);
  for (const c of SENSITIVE_CATEGORIES)
    if (ids.has(c.id)) for (const l of c.labels) if (!labels.includes(l)) labels.push(l);
  return { scopes, labels };
}

export type GrantWords = {
  /**
   * Ordinary categories whose scopes are all in the grant, in catalogue order; then the narrower entries
   * (blood type, lab results without reports) whose scopes are in the grant and in no category before.
   */
  categories: Category[];
  /** Sensitive categories whose labels are all in the grant. */
  sensitive: SensitiveCategory[];
  /** Scopes not covered by a whole category, shown as they are. */
  otherScopes: string[];
  /** Labels not covered by a whole sensitive category: code and display (the code when no display). */
  otherLabels: { code: string; display: string }[];
};

/** The reverse: an existing grant's scopes and labels in plain words; anything unknown is kept as it is. */
export function grantToWords(
  scopes: readonly string[],
  labels: readonly (string | { code: string; display: string })[],
): GrantWords {
  const scopeSet = new Set(scopes);
  const labelCodes = labels.map((l) => (typeof l === 'string' ? l : l.code));
  const labelSet = new Set(labelCodes);
  const usedScopes = new Set<string>();
  const usedLabels = new Set<string>();
  const categories = CATEGORIES.filter((c) => c.scopes.every((s) => scopeSet.has(s)));
  for (const c of categories) c.scopes.forEach((s) => usedScopes.add(s));
  for (const c of NARROW_CATEGORIES) {
    if (!c.scopes.every((s) => scopeSet.has(s) && !usedScopes.has(s))) continue;
    categories.push(c);
    c.scopes.forEach((s) => usedScopes.add(s));
  }
  const sensitive = SENSITIVE_CATEGORIES.filter((c) => c.labels.every((l) => labelSet.has(l)));
  for (const c of sensitive) c.labels.forEach((l) => usedLabels.add(l));
  const otherScopes = [...new Set(scopes)].filter((s) => !usedScopes.has(s));
  const seen = new Set<string>();
  const otherLabels: { code: string; display: string }[] = [];
  for (const l of labels) {
    const code = typeof l === 'string' ? l : l.code;
    if (usedLabels.has(code) || seen.has(code)) continue;
    seen.add(code);
    otherLabels.push({ code, display: typeof l === 'string' || !l.display ? code : l.display });
  }
  return { categories, sensitive, otherScopes, otherLabels };
}

/** "treatment" → "Treatment" (HL7 displays are lower case). */
export function capitalise(s: string): string {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

/** "a, b and c". */
export function joinWords(words: readonly string[]): string {
  if (words.length <= 1) return words.join('');
  return `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
}

/** One sentence fragment for a grant: "allergies, lab results and mental health records". */
export function describeGrantScope(
  scopes: readonly string[],
  labels: readonly (string | { code: string; display: string })[],
): string {
  const w = grantToWords(scopes, labels);
  const parts = [
    ...w.categories.map((c) => c.phrase),
    ...w.otherScopes,
    ...w.sensitive.map((c) => c.phrase),
    ...w.otherLabels.map((l) => `records labelled ${l.display}`),
  ];
  return parts.length ? joinWords(parts) : 'nothing';
}

// Category words as they arrive on access events (FHIR category codes, resource types) in plain words.
const EVENT_WORDS: Record<string, string> = {
  laboratory: 'lab results',
  lab: 'lab results',
  'vital-signs': 'vital signs',
  rad: 'imaging',
  imaging: 'imaging',
  allergyintolerance: 'allergies',
  allergies: 'allergies',
  medicationrequest: 'medications',
  medicationstatement: 'medications',
  medications: 'medications',
  condition: 'conditions',
  conditions: 'conditions',
  documentreference: 'clinical notes',
  'clinical-notes': 'clinical notes',
  notes: 'clinical notes',
  immunization: 'immunizations',
  immunizations: 'immunizations',
  imagingstudy: 'imaging',
  observation: 'observations',
  diagnosticreport: 'reports',
  'social-history': 'social history',
  exam: 'examination findings',
  survey: 'questionnaires',
  procedure: 'procedures',
  therapy: 'therapy records',
  activity: 'activity records',
};

/** Plain words for one category word or resource type from an access event ("laboratory" → "lab results"). */
export function eventCategoryWords(word: string): string {
  return EVENT_WORDS[word.toLowerCase()] ?? word;
}

/** Plain words for an HL7 label code (PSY → "Mental health"), or the code itself. */
export function labelWords(code: string): string {
  const c = SENSITIVE_CATEGORIES.find((s) => s.labels.includes(code));
  return c ? c.label : code;
}

/** What was read, in a few words: "lab results and vital signs". */
export function recordsPhrase(categories: readonly string[], resourceTypes: readonly string[] = []): string {
  const words: string[] = [];
  const source = categories.length ? categories : resourceTypes;
  for (const c of source) {
    const w = eventCategoryWords(c);
    if (!words.includes(w)) words.push(w);
  }
  return words.length ? joinWords(words) : 'records';
}
