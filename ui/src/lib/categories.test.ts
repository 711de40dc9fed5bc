import { describe, expect, it } from 'vitest';
import {
  CATEGORIES,
  capitalise,
  SENSITIVE_CATEGORIES,
  describeGrantScope,
  eventCategoryWords,
  grantToWords,
  joinWords,
  labelWords,
  recordsPhrase,
  selectionToGrant,
} from './categories';

describe('selectionToGrant', () => {
  it('nothing ticked gives no scopes and no labels', () => {
    expect(selectionToGrant([])).toEqual({ scopes: [], labels: [] });
  });

  it('maps each ordinary category to its SMART v2 scopes', () => {
    expect(selectionToGrant(['allergies']).scopes).toEqual(['patient/AllergyIntolerance.rs']);
    expect(selectionToGrant(['medications']).scopes).toEqual([
      'patient/MedicationRequest.rs',
      'patient/MedicationStatement.rs',
    ]);
    expect(selectionToGrant(['lab']).scopes).toEqual([
      'patient/Observation.rs?category=laboratory',
      'patient/DiagnosticReport.rs?category=LAB',
    ]);
    expect(selectionToGrant(['imaging']).scopes).toEqual([
      'patient/DiagnosticReport.rs?category=RAD',
      'patient/ImagingStudy.rs',
    ]);
    expect(selectionToGrant(['vitals']).scopes).toEqual(['patient/Observation.rs?category=vital-signs']);
    expect(selectionToGrant(['notes']).scopes).toEqual(['patient/DocumentReference.rs']);
    expect(selectionToGrant(['immunizations']).scopes).toEqual(['patient/Immunization.rs']);
    expect(selectionToGrant(['conditions']).scopes).toEqual(['patient/Condition.rs']);
  });

  it('sensitive categories add HL7 labels, not scopes', () => {
    const g = selectionToGrant(['lab', 'mental-health', 'hiv']);
    expect(g.scopes).toEqual(['patient/Observation.rs?category=laboratory', 'patient/DiagnosticReport.rs?category=LAB']);
    expect(g.labels).toEqual(['PSY', 'MH', 'BH', 'PSYTHPN', 'HIV']);
    expect(selectionToGrant(['substance-use']).labels).toEqual(['ETH', 'ETHUD', 'SUD', 'OPIOIDUD']);
    expect(selectionToGrant(['sexual-reproductive']).labels).toEqual(['SEX', 'STD', 'PREGNANT']);
    expect(selectionToGrant(['abuse-violence']).labels).toEqual(['SDV', 'MST']);
    expect(selectionToGrant(['genetic']).labels).toEqual(['GDIS']);
  });

  it('keeps catalogue order whatever the order ticked, with no repeats', () => {
    expect(selectionToGrant(['vitals', 'allergies', 'vitals']).scopes).toEqual([
      'patient/AllergyIntolerance.rs',
      'patient/Observation.rs?category=vital-signs',
    ]);
  });

  it('refuses an unknown category id', () => {
    expect(() => selectionToGrant(['everything'])).toThrow(/unknown category/);
  });

  it('has no sensitive category among the ordinary ones', () => {
    const ordinary = new Set(CATEGORIES.map((c) => c.id));
    for (const s of SENSITIVE_CATEGORIES) expect(ordinary.has(s.id)).toBe(false);
  });
});

describe('grantToWords', () => {
  it('round-trips every selection of the catalogue', () => {
    const all = [...CATEGORIES, ...SENSITIVE_CATEGORIES].map((c) => c.id);
    for (let mask = 1; mask < 1 << 6; mask++) {
      // A spread of subsets: ordinary ones picked by the mask, every other sensitive one.
      const ids = all.filter((_, i) => (mask >> i % 6) & 1);
      const { scopes, labels } = selectionToGrant(ids);
      const w = grantToWords(scopes, labels);
      expect([...w.categories, ...w.sensitive].map((c) => c.id).sort()).toEqual([...ids].sort());
      expect(w.otherScopes).toEqual([]);
      expect(w.otherLabels).toEqual([]);
    }
  });

  it('shows unknown scopes as they are, and a half category as its scopes', () => {
    const w = grantToWords(['patient/AllergyIntolerance.rs', 'patient/Procedure.rs', 'patient/MedicationRequest.rs'], []);
    expect(w.categories.map((c) => c.label)).toEqual(['Allergies']);
    expect(w.otherScopes).toEqual(['patient/Procedure.rs', 'patient/MedicationRequest.rs']);
  });

  it('names blood type and lab results without reports, outside any whole category', () => {
    const blood = 'patient/Observation.rs?code=http://loinc.org|882-1';
    const lab = 'patient/Observation.rs?category=laboratory';
    const w = grantToWords(['patient/Condition.rs', lab, blood], []);
    expect(w.categories.map((c) => c.label)).toEqual(['Conditions', 'Blood type', 'Lab results']);
    expect(w.otherScopes).toEqual([]);
    // With the reports, lab results are the catalogue's whole category, named once.
    const whole = grantToWords(selectionToGrant(['lab']).scopes, []);
    expect(whole.categories.map((c) => c.id)).toEqual(['lab']);
  });

  it('reads labels given as codes with displays, keeping unknown ones', () => {
    const w = grantToWords(['patient/Condition.rs'], [
      { code: 'HIV', display: 'HIV/AIDS information sensitivity' },
      { code: 'TBOO', display: 'taboo' },
      { code: 'PSY', display: 'psychiatry' },
    ]);
    expect(w.sensitive.map((c) => c.label)).toEqual(['HIV']);
    expect(w.otherLabels).toEqual([
      { code: 'TBOO', display: 'taboo' },
      { code: 'PSY', display: 'psychiatry' },
    ]);
  });

  it('describes a grant in one phrase', () => {
    const { scopes, labels } = selectionToGrant(['allergies', 'lab', 'mental-health']);
    expect(describeGrantScope(scopes, labels)).toBe('allergies, lab results and mental health records');
    expect(describeGrantScope([], [])).toBe('nothing');
    expect(describeGrantScope(['patient/Procedure.rs'], ['TBOO'])).toBe(
      'patient/Procedure.rs and records labelled TBOO',
    );
  });
});

describe('words', () => {
  it('capitalises a display', () => {
    expect(capitalise('treatment')).toBe('Treatment');
    expect(capitalise('')).toBe('');
  });

  it('joins lists in plain English', () => {
    expect(joinWords([])).toBe('');
    expect(joinWords(['a'])).toBe('a');
    expect(joinWords(['a', 'b'])).toBe('a and b');
    expect(joinWords(['a', 'b', 'c'])).toBe('a, b and c');
  });

  it('puts event category words and labels in plain words', () => {
    expect(eventCategoryWords('laboratory')).toBe('lab results');
    expect(eventCategoryWords('vital-signs')).toBe('vital signs');
    expect(eventCategoryWords('AllergyIntolerance')).toBe('allergies');
    expect(eventCategoryWords('something-else')).toBe('something-else');
    expect(labelWords('PSY')).toBe('Mental health');
    expect(labelWords('HIV')).toBe('HIV');
    expect(labelWords('TBOO')).toBe('TBOO');
  });

  it('names what was read, falling back to resource types', () => {
    expect(recordsPhrase(['laboratory'])).toBe('lab results');
    expect(recordsPhrase(['laboratory', 'vital-signs', 'laboratory'])).toBe('lab results and vital signs');
    expect(recordsPhrase([], ['Observation', 'AllergyIntolerance'])).toBe('observations and allergies');
    expect(recordsPhrase([], [])).toBe('records');
  });
});
