import { describe, expect, it } from 'vitest';
import { handContact, takeContact } from './handoff';

describe('handoff', () => {
  it('hands a contact card over once', () => {
    expect(takeContact()).toBeNull();
    handContact('  CU1:C:ABC \n');
    expect(takeContact()).toBe('CU1:C:ABC');
    expect(takeContact()).toBeNull();
    handContact('   ');
    expect(takeContact()).toBeNull();
  });
});
