import { describe, expect, it } from 'vitest';
import { clip, findUnstorableText, storable, unstorableReason } from '../src/unicode.js';

const GRIN = '\u{1F600}'; // two UTF-16 code units

describe('clip', () => {
  it('keeps short text as it is and cuts long text to the limit', () => {
    expect(clip('abc', 3)).toBe('abc');
    expect(clip('abcdef', 3)).toBe('abc');
    expect(clip('abcdef', 4, true)).toBe('abc…');
  });

  it('never cuts between the halves of a surrogate pair', () => {
    const text = `ab${GRIN}cd`;
    expect(clip(text, 3)).toBe('ab');
    expect(clip(text, 4)).toBe(`ab${GRIN}`);
    expect(clip(text, 4, true)).toBe('ab…');
    expect(clip(text, 5, true)).toBe(`ab${GRIN}…`);
    for (let max = 0; max <= text.length + 1; max++) {
      expect(unstorableReason(clip(text, max))).toBeUndefined();
      expect(unstorableReason(clip(text, max, true))).toBeUndefined();
    }
  });
});

describe('unstorable text', () => {
  it('names NUL and lone surrogates, and accepts paired ones', () => {
    expect(unstorableReason(`ok ${GRIN}`)).toBeUndefined();
    expect(unstorableReason('a\u0000b')).toMatch(/NUL/);
    expect(unstorableReason('a\ud800b')).toMatch(/lone UTF-16 surrogate/);
    expect(unstorableReason('a\udc00')).toMatch(/lone UTF-16 surrogate/);
  });

  it('finds the first bad string or key by its path', () => {
    expect(findUnstorableText({ a: ['x', { b: 'y\u0000' }] })).toEqual({
      field: 'a[1].b',
      reason: 'must not contain the NUL character (U+0000)',
    });
    expect(findUnstorableText({ ['k\ud800']: 1 })?.field).toBe('k\ud800');
    expect(findUnstorableText({ a: [1, true, null, 'fine'] })).toBeUndefined();
    expect(findUnstorableText({ a: { b: { c: 'x\u0000' } } }, '', 2)).toBeUndefined();
  });

  it('storable() replaces what cannot be stored with U+FFFD', () => {
    expect(storable('a\u0000b\ud800c')).toBe('a\ufffdb\ufffdc');
    expect(storable(`keep ${GRIN}`)).toBe(`keep ${GRIN}`);
  });
});
