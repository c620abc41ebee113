/**
 * Text that every store can keep, and cutting text without breaking it. A pure utility every layer may use: the
 * domain shortens titles and snippets, the MCP and OAuth layers refuse what no database can store.
 *
 * JavaScript strings are UTF-16. Two things in them are not storable Unicode text: U+0000 (PostgreSQL refuses it in
 * text and jsonb, SQLite keeps it and C strings end at it) and a lone surrogate (half of a pair; a UTF-8 encoder cannot
 * write it, and PostgreSQL refuses its JSON escape "\ud83d" as "invalid input syntax for type json"). Cutting a string
 * with `slice` at a fixed length can make the second out of valid text — an emoji cut in half — so every cut goes
 * through {@link clip}.
 */

/** A UTF-16 surrogate without its pair. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why `text` cannot be stored as text (it holds U+0000 or a lone surrogate), or undefined. */
export function unstorableReason(text: string): string | undefined {
  if (text.includes('\u0000')) return 'must not contain the NUL character (U+0000)';
  if (LONE_SURROGATE.test(text))
    return 'must be valid Unicode text (it holds a lone UTF-16 surrogate, e.g. \\ud800)';
  return undefined;
}

/**
 * The first string or object key inside `value` (to any depth up to `maxDepth`) that cannot be stored, as a field
 * path ("title", "items[0].changes.title") and the reason; undefined when everything can be stored.
 */
export function findUnstorableText(
  value: unknown,
  path = '',
  maxDepth = 64,
): { field: string; reason: string } | undefined {
  if (typeof value === 'string') {
    const reason = unstorableReason(value);
    return reason === undefined ? undefined : { field: path, reason };
  }
  if (maxDepth <= 0 || value === null || typeof value !== 'object') return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findUnstorableText(value[i], `${path}[${i}]`, maxDepth - 1);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [key, inner] of Object.entries(value)) {
    const at = path === '' ? key : `${path}.${key}`;
    const inKey = unstorableReason(key);
    if (inKey !== undefined) return { field: at, reason: `(a key) ${inKey}` };
    const found = findUnstorableText(inner, at, maxDepth - 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * `text` cut to at most `max` UTF-16 code units, never between the two halves of a surrogate pair (the cut moves one
 * unit earlier instead). With `ellipsis`, a cut text ends in "…" and the whole stays within `max`.
 */
export function clip(text: string, max: number, ellipsis = false): string {
  if (text.length <= max) return text;
  let end = ellipsis ? max - 1 : max;
  if (end > 0 && end < text.length) {
    const before = text.charCodeAt(end - 1);
    if (before >= 0xd800 && before <= 0xdbff) end -= 1;
  }
  const cut = text.slice(0, Math.max(0, end));
  return ellipsis ? `${cut}…` : cut;
}

const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/**
 * `text` made storable for records that must never fail to be written (the audit trail, logs): U+0000 and lone
 * surrogates become U+FFFD, the replacement character. Input a user gave is refused instead ({@link unstorableReason}).
 */
export function storable(text: string): string {
  return text.replaceAll('\u0000', '\ufffd').replace(LONE_SURROGATES, '\ufffd');
}
