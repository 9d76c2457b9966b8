/** Near-miss suggestions (src/config/suggest-name.ts): case and `-`/`_` insensitive, else a small edit distance. */
import { describe, expect, it } from 'vitest';
import { suggestName } from '../../../src/config/suggest-name.js';
import { suggestName as fromSchema } from '../../../src/config/schema.js';

describe('suggestName', () => {
  const fields = ['retryOn', 'perTryTimeout', 'attempts', 'spec'];

  it('matches ignoring case, dashes and underscores', () => {
    expect(suggestName('retry_on', fields)).toBe('retryOn');
    expect(suggestName('RETRYON', fields)).toBe('retryOn');
    expect(suggestName('per-try-timeout', fields)).toBe('perTryTimeout');
  });

  it('counts an adjacent transposition as one edit', () => {
    expect(suggestName('sepc', fields)).toBe('spec');
    expect(suggestName('attepmts', fields)).toBe('attempts');
  });

  it('suggests nothing when no candidate is close', () => {
    expect(suggestName('timeout', ['hosts', 'http'])).toBeUndefined();
    expect(suggestName('abc', [])).toBeUndefined();
  });

  it('is still importable from schema.ts', () => {
    expect(fromSchema).toBe(suggestName);
  });
});
