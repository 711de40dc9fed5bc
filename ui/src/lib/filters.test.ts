import { describe, expect, it } from 'vitest';
import {
  activeFilterCount,
  dayStart,
  emptyForm,
  formToFilter,
  formToQuery,
  isEmptyForm,
  queryToForm,
  toDateInput,
  type FilterForm,
} from './filters';

function form(patch: Partial<FilterForm>): FilterForm {
  return { ...emptyForm(), ...patch };
}

describe('formToFilter', () => {
  it('leaves out empty fields', () => {
    expect(formToFilter(emptyForm())).toEqual({});
    expect(isEmptyForm(form({ text: '   ' }))).toBe(true);
  });

  it('turns dates into local midnights, with `to` the exclusive end of its day', () => {
    const f = formToFilter(form({ from: '2025-03-01', to: '2025-03-31' }));
    expect(f.from).toBe(new Date(2025, 2, 1).getTime());
    expect(f.to).toBe(new Date(2025, 3, 1).getTime());
    // A one-day range covers that whole day.
    const d = formToFilter(form({ from: '2024-02-29', to: '2024-02-29' }));
    expect(d.to! - d.from!).toBeGreaterThanOrEqual(23 * 3600_000);
    expect(new Date(d.to!).getDate()).toBe(1);
  });

  it('ignores dates that are not real', () => {
    expect(formToFilter(form({ from: '2025-02-30', to: 'yesterday' }))).toEqual({});
    expect(dayStart('2025-13-01')).toBeUndefined();
    expect(dayStart('')).toBeUndefined();
  });

  it('passes every field through', () => {
    expect(
      formToFilter(
        form({
          reader: 'cusig1abc',
          organisation: "St Mary's",
          category: 'laboratory',
          outcome: 'denied',
          break_glass: true,
          grant_id: 'g1',
          text: '  hopper ',
        }),
      ),
    ).toEqual({
      reader: 'cusig1abc',
      organisation: "St Mary's",
      category: 'laboratory',
      outcome: 'denied',
      break_glass: true,
      grant_id: 'g1',
      text: 'hopper',
    });
    expect(activeFilterCount(form({ outcome: 'allowed', text: 'x' }))).toBe(2);
  });
});

describe('URL query', () => {
  it('round-trips a full form', () => {
    const f = form({
      reader: 'cusig1abc',
      organisation: "St Mary's & Co",
      category: 'vital-signs',
      from: '2025-03-01',
      to: '2025-03-31',
      outcome: 'allowed',
      break_glass: true,
      grant_id: 'abc/def',
      text: 'lab = 100%',
    });
    const q = formToQuery(f);
    expect(queryToForm(q)).toEqual(f);
    expect(queryToForm(`?${q}`)).toEqual(f);
  });

  it('writes only what filters, with short keys', () => {
    expect(formToQuery(emptyForm())).toBe('');
    expect(formToQuery(form({ outcome: 'denied', break_glass: true }))).toBe('outcome=denied&bg=1');
    expect(formToQuery(form({ text: '  ' }))).toBe('');
  });

  it('ignores malformed values', () => {
    const f = queryToForm('outcome=maybe&from=2025-99-01&to=soon&bg=yes&unknown=1');
    expect(f).toEqual(emptyForm());
  });

  it('reads what Home links to', () => {
    expect(formToFilter(queryToForm('bg=1'))).toEqual({ break_glass: true });
    expect(formToFilter(queryToForm('outcome=denied'))).toEqual({ outcome: 'denied' });
  });

  it('formats a date input value', () => {
    expect(toDateInput(new Date(2025, 0, 5, 23, 59).getTime())).toBe('2025-01-05');
  });
});
