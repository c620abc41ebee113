/**
 * fast-check arbitraries for the fuzz tests: tool arguments derived from a tool's JSON schema (the inputSchema the
 * server itself publishes), with edge values of the right type most of the time and wrong types, extra properties,
 * missing required ones and deep nesting some of the time; plus the odd strings, dates, time zones, recurrence
 * rules, URLs and base64 payloads those fields meet in practice.
 *
 * Every URL any generator makes names a loopback host (127.0.0.1, localhost, [::1] and other spellings of them):
 * some of what is fuzzed makes the server fetch a URL (a client id that is a URL, a jwks_uri, a request_uri), and
 * a test never sends traffic beyond this machine. {@link loopbackOnly} enforces it on whatever a generator made.
 */
import fc from 'fast-check';

/** The part of JSON Schema (draft 7, as the MCP SDK writes zod schemas) the tools' input schemas use. */
export interface JsonSchema {
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, JsonSchema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | JsonSchema;
  readonly propertyNames?: JsonSchema;
  readonly items?: JsonSchema;
  readonly anyOf?: readonly JsonSchema[];
  readonly enum?: readonly unknown[];
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly description?: string;
}

// ------------------------------------------------------------------------------------------- strings

/** Strings that break naive code: empty, blanks, control characters, NUL, emoji, bidi, lone surrogates, SQL. */
export const EDGE_STRINGS: readonly string[] = [
  '',
  ' ',
  '   \t  ',
  '\u0000',
  'a\u0000b',
  '\u0000\u0001\u0002\u0003\u0007\u0008\u001b\u007f',
  '\r\n\r\n',
  'line one\nline two',
  '😀',
  '👩‍👩‍👧‍👦🏳️‍🌈',
  'e\u0301\u0301\u0301\u0301',
  '\u202eevil\u202c',
  '\ufeffBOM',
  '\ud800',
  'x\udfffy',
  '\uffff\ufffe',
  'Ω≈ç√∫˜µ≤≥÷',
  '田中さんにあげて下さい',
  '𝕿𝖍𝖊 𝖖𝖚𝖎𝖈𝖐',
  "' OR '1'='1",
  "'; DROP TABLE items; --",
  '%_\\%',
  '\\',
  '"',
  '${7*7}{{7*7}}',
  '<script>alert(1)</script>',
  '../../../../etc/passwd',
  'null',
  'undefined',
  'NaN',
  '-Infinity',
  '0x7fffffff',
  '1e400',
  'true',
  '[]',
  '{}',
  '__proto__',
  'constructor',
];

/** Text of at most `max` characters (UTF-16 units), of every kind, with the boundary lengths. */
export function text(minLength = 0, maxLength = 200): fc.Arbitrary<string> {
  const max = Math.max(minLength, maxLength);
  const small = Math.min(max, 40);
  return fc.oneof(
    { weight: 4, arbitrary: fc.string({ minLength, maxLength: small }) },
    { weight: 2, arbitrary: fc.string({ minLength, maxLength: small, unit: 'grapheme' }) },
    { weight: 2, arbitrary: fc.string({ minLength, maxLength: small, unit: 'binary' }) },
    { weight: 3, arbitrary: fc.constantFrom(...EDGE_STRINGS) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'x'.repeat(max),
        'x'.repeat(max + 1),
        '😀'.repeat(Math.ceil(max / 2)),
        '😀'.repeat(Math.ceil(max / 2) + 1),
        'é'.repeat(max),
        'y'.repeat(Math.min(100_000, max * 10 + 1)),
      ),
    },
  );
}

// ------------------------------------------------------------------------------------------- dates

const VALID_DATES = [
  '2026-03-01',
  '2026-03-01T10:00',
  '2026-03-01T10:00:00',
  '2026-03-01T10:00:00Z',
  '2026-03-01T10:00:00.123Z',
  '2026-03-01T10:00+02:00',
  '2026-03-01T10:00:00-09:30',
  '2026-03-29T02:30', // a DST gap in Europe
  '2026-10-25T02:30', // a DST overlap in Europe
  '2028-02-29',
  '1970-01-01',
  '2000-01-01T00:00:00Z',
  '0001-01-01',
  '9999-12-31T23:59:59Z',
];

const BAD_DATES = [
  '',
  ' ',
  '2026-02-30',
  '2026-02-29',
  '2026-13-01',
  '2026-00-10',
  '2026-04-31T10:00',
  '2026-1-1',
  '26-01-01',
  '2026/01/01',
  '01/02/2026',
  '2026-01-01T24:00',
  '2026-01-01T23:60',
  '2026-01-01T23:59:60',
  '2026-01-01T10:00+25:00',
  '2026-01-01T10:00+14:01',
  '2026-01-01T10:00:00.1234567890123Z',
  '2026-01-01 10:00',
  '2026-01-01T',
  'T10:00',
  '2026-W01-1',
  '2026-001',
  '+275760-09-13T00:00:00Z',
  '-000001-01-01',
  '0000-00-00',
  'tomorrow',
  'now',
  'next monday at 9',
  '1700000000',
  '1e10',
  ' 2026-01-01 ',
  '2026-01-01\u0000',
  '２０２６-０１-０１',
  '2026-01-01T10:00Z[Europe/Paris]',
];

/** A date or date-time as a tool takes it: well-formed (any instant of a wide range) or broken in many ways. */
export const dateText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...VALID_DATES) },
  { weight: 3, arbitrary: fc.constantFrom(...BAD_DATES) },
  {
    weight: 3,
    arbitrary: fc
      .date({
        min: new Date('1900-01-01T00:00:00Z'),
        max: new Date('2200-12-31T23:59:59Z'),
        noInvalidDate: true,
      })
      .chain((d) =>
        fc.constantFrom(
          d.toISOString(),
          d.toISOString().slice(0, 10),
          d.toISOString().slice(0, 16),
          d.toISOString().slice(0, 19),
          `${d.toISOString().slice(0, 19)}+05:45`,
        ),
      ),
  },
  { weight: 1, arbitrary: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.integer({ min: -1, max: 10_000 }),
        fc.integer({ min: -1, max: 14 }),
        fc.integer({ min: -1, max: 33 }),
        fc.integer({ min: -1, max: 25 }),
        fc.integer({ min: -1, max: 61 }),
      )
      .map(([y, mo, d, h, mi]) => {
        const p = (n: number, w = 2): string => String(n).padStart(w, '0');
        return `${p(y, 4)}-${p(mo)}-${p(d)}T${p(h)}:${p(mi)}`;
      }),
  },
  { weight: 1, arbitrary: text(0, 64) },
);

// ------------------------------------------------------------------------------------------- other fields

export const timeZoneText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    'UTC',
    'Europe/Paris',
    'America/New_York',
    'America/St_Johns',
    'Asia/Kathmandu',
    'Australia/Lord_Howe',
    'Pacific/Kiritimati',
    'Pacific/Pago_Pago',
    'Etc/GMT+12',
    'Etc/GMT-14',
    'EST5EDT',
  ),
  fc.constantFrom(
    '',
    'utc',
    'Europe/paris',
    'Europe/Pariss',
    'Mars/Olympus',
    '+02:00',
    'GMT+2',
    'UTC+25',
    '../../etc/localtime',
    'Europe/Paris\u0000',
    'x'.repeat(64),
    'x'.repeat(65),
  ),
  text(0, 64),
);

const FREQS = ['SECONDLY', 'MINUTELY', 'HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY', 'YEARLY', 'FORTNIGHTLY', ''];
const DAYS = ['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU', '1MO', '-1FR', '53SU', 'XX', '+2TU'];

/** RRULE texts: typical ones, pathological ones (every second for years), and malformed ones. */
export const recurrenceText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    'FREQ=DAILY',
    'FREQ=WEEKLY;BYDAY=MO,WE',
    'FREQ=MONTHLY;BYMONTHDAY=1;COUNT=6',
    'FREQ=MONTHLY;BYMONTHDAY=31',
    'FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29',
    'FREQ=MONTHLY;BYDAY=-1FR',
    'FREQ=YEARLY;BYWEEKNO=53;BYDAY=MO',
    'FREQ=SECONDLY',
    'FREQ=MINUTELY;COUNT=1000000',
    'FREQ=HOURLY;INTERVAL=0',
    'FREQ=DAILY;INTERVAL=-1',
    'FREQ=DAILY;UNTIL=19000101',
    'FREQ=DAILY;UNTIL=99991231T235959Z',
    'FREQ=DAILY;COUNT=0',
    'FREQ=DAILY;COUNT=-5',
    'RRULE:FREQ=DAILY',
    'DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY',
    'FREQ=DAILY;;;',
    'FREQ=DAILY;BYSETPOS=-1',
    'FREQ=MONTHLY;BYMONTHDAY=30;BYMONTH=2',
    'FREQ=WEEKLY;BYDAY=',
    'FREQ=DAILY;WKST=XX',
    'freq=daily',
    '',
  ),
  fc
    .record(
      {
        freq: fc.constantFrom(...FREQS),
        interval: fc.option(fc.integer({ min: -2, max: 100_000 }), { nil: undefined }),
        count: fc.option(fc.integer({ min: -1, max: 10_000_000 }), { nil: undefined }),
        byday: fc.option(fc.array(fc.constantFrom(...DAYS), { maxLength: 8 }), { nil: undefined }),
        bymonthday: fc.option(fc.integer({ min: -32, max: 32 }), { nil: undefined }),
        byhour: fc.option(fc.integer({ min: -1, max: 25 }), { nil: undefined }),
        until: fc.option(dateText, { nil: undefined }),
      },
      { requiredKeys: ['freq'] },
    )
    .map((r) =>
      [
        `FREQ=${r.freq}`,
        r.interval !== undefined ? `INTERVAL=${r.interval}` : '',
        r.count !== undefined ? `COUNT=${r.count}` : '',
        r.byday !== undefined ? `BYDAY=${r.byday.join(',')}` : '',
        r.bymonthday !== undefined ? `BYMONTHDAY=${r.bymonthday}` : '',
        r.byhour !== undefined ? `BYHOUR=${r.byhour}` : '',
        r.until !== undefined ? `UNTIL=${r.until.replace(/[-:]/g, '')}` : '',
      ]
        .filter(Boolean)
        .join(';'),
    ),
  text(0, 500),
);

/** Loopback hosts, spelt in the ways URL parsers disagree about. */
export const LOOPBACK_HOSTS = [
  '127.0.0.1',
  'localhost',
  '[::1]',
  'LOCALHOST',
  '127.1',
  '127.0.0.1.',
  '[::ffff:127.0.0.1]',
  '0x7f.0.0.1',
  '2130706433',
];

/** URLs of every odd shape, all on a loopback host (or without a host). */
export const urlText: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(
        'https',
        'http',
        'HTTPS',
        'com.example.app',
        'myapp',
        'javascript',
        'data',
        'file',
        'ftp',
        'ws',
        'x-y+z.1',
      ),
      fc.constantFrom('://', ':/', ':', ':///', '://user:pw@', '://@'),
      fc.constantFrom(...LOOPBACK_HOSTS, ''),
      fc.constantFrom('', ':0', ':1', ':443', ':65535', ':65536', ':-1', ':abc'),
      fc.constantFrom(
        '',
        '/',
        '/cb',
        '/cb?x=1',
        '/cb#frag',
        '/*',
        '/a/../b',
        '/%00',
        '/%zz',
        '/ü',
        '/😀',
        '/cb?x=1&x=2',
      ),
    )
    .map(([s, sep, h, port, p]) => `${s}${sep}${h}${h === '' ? '' : port}${p}`),
  fc.constantFrom(
    'http://127.0.0.1/cb',
    'https://127.0.0.1/cb',
    'http://localhost:8080/callback',
    'http://[::1]/cb',
    'com.example.app:/callback',
    'javascript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'file:///etc/passwd',
    'not a url',
    '//127.0.0.1/cb',
    '/cb',
    'https://',
    'https:/127.0.0.1',
    'HTTP://127.0.0.1/CB',
    'https://127.0.0.1/cb\u0000',
    'https://127.0.0.1/cb\n',
    ' https://127.0.0.1/cb',
    `https://127.0.0.1/${'a'.repeat(2100)}`,
  ),
  text(0, 100),
);

/** Base64 payloads: valid (text, binary, file signatures), malformed, empty, and large. */
export const base64Text: fc.Arbitrary<string> = fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b).toString('base64')),
  fc.string({ maxLength: 200 }).map((s) => Buffer.from(s, 'utf8').toString('base64')),
  fc.constantFrom(
    Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n', 'latin1').toString(
      'base64',
    ),
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]).toString('base64'),
    Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]).toString('base64'),
    Buffer.from('PK\u0003\u0004garbage', 'latin1').toString('base64'),
    Buffer.from('<html><script>alert(1)</script></html>').toString('base64'),
    Buffer.from('\ufeff\u0000text with NUL').toString('base64'),
    '',
    '=',
    '====',
    'a',
    'abc',
    '@@@@',
    'aGVsbG8=aGVsbG8=',
    'aGVs bG8=',
    'aGVsbG8',
    'aGVsbG8_-w',
    'data:text/plain;base64,aGVsbG8=',
    Buffer.alloc(48 * 1024, 7).toString('base64'),
    'A'.repeat(70_001),
  ),
  text(0, 100),
);

export const mimeText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    'application/pdf',
    'text/plain',
    'text/markdown',
    'text/html; charset=utf-8',
    'image/png',
    'image/svg+xml',
    'application/octet-stream',
    'application/x-msdownload',
    '',
    'x',
    'text/',
    '/plain',
    'TEXT/PLAIN',
    '../../',
    `application/${'x'.repeat(130)}`,
  ),
  text(0, 127),
);

/** next_cursor-like values: empty, junk, base64url of JSON that is not a cursor, huge. */
export const cursorText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', 'abc', '0', '-1', '%%', 'x'.repeat(512), 'x'.repeat(513)),
  fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null').toString('base64url')),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64url')),
  text(0, 512),
);

/** Integers and other numbers around a range's edges (JSON has no NaN or Infinity: those go as null or text). */
export function numberAround(
  min: number | undefined,
  max: number | undefined,
  integer: boolean,
): fc.Arbitrary<unknown> {
  const lo = min ?? -1_000_000;
  const hi = max ?? 1_000_000;
  const edges: unknown[] = [
    lo,
    hi,
    lo - 1,
    hi + 1,
    0,
    -0,
    -1,
    1.5,
    -0.5,
    2 ** 31,
    -(2 ** 31) - 1,
    Number.MAX_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER + 2,
    -Number.MAX_SAFE_INTEGER,
    1e21,
    1e308,
    -1e308,
    5e-324,
    null,
    'NaN',
    'Infinity',
    '1',
  ];
  return fc.oneof(
    {
      weight: 4,
      arbitrary: integer ? fc.integer({ min: lo, max: hi }) : fc.double({ min: lo, max: hi, noNaN: true }),
    },
    { weight: 3, arbitrary: fc.constantFrom(...edges) },
    { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  );
}

/** A value nested `depth` levels deep (arrays and objects alternating). */
export function nested(depth: number, leaf: unknown = 'deep'): unknown {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { a: v };
  return v;
}

/** Any JSON value, or a deeply nested one: what a field of the wrong type gets. */
export const wrongType: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(null, true, false, 0, -1, 1e308, '', [], {}, [null], { '': null }),
  },
  { weight: 1, arbitrary: fc.integer({ min: 10, max: 60 }).map((d) => nested(d)) },
);

// ------------------------------------------------------------------------------------------- schema → arbitrary

/** What the generators know beyond the schema: real ids and idempotency keys to aim at (other tenants' included). */
export interface Hints {
  /** Item ids to use where an id is asked for (mixed with junk). */
  readonly ids: readonly string[];
  /** client_ref values to reuse (another tenant's among them: a create must not return that tenant's record). */
  readonly clientRefs: readonly string[];
}

/** The fields update_items accepts in `changes` (by kind), plus near misses. */
const CHANGE_FIELDS = [
  'name',
  'title',
  'description',
  'status',
  'priority',
  'progress',
  'notes',
  'tags',
  'start_date',
  'end_date',
  'due_date',
  'reminder_date',
  'timezone',
  'recurrence',
  'project_id',
  'start_time',
  'end_time',
  'all_day',
  'location',
  'attendees',
  'reminder_minutes',
  'external_url',
  'text',
  'kind',
  'pinned',
  'id',
  'tenant_id',
  'deleted_at',
  'created_at',
  'version',
  'titel',
  '__proto__',
];

const ENUM_VALUES = [
  'not_started',
  'in_progress',
  'on_hold',
  'completed',
  'cancelled',
  'todo',
  'done',
  'blocked',
  'low',
  'medium',
  'high',
  'urgent',
  'note',
  'fact',
  'preference',
];

function idText(hints: Hints): fc.Arbitrary<string> {
  const junk = fc.constantFrom(
    '',
    ' ',
    'x'.repeat(128),
    'x'.repeat(129),
    "' OR '1'='1",
    '%',
    '../x',
    '\u0000',
    'null',
  );
  return hints.ids.length > 0
    ? fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...hints.ids) },
        { weight: 1, arbitrary: junk },
        { weight: 1, arbitrary: fc.uuid() },
      )
    : fc.oneof(junk, fc.uuid(), fc.string({ maxLength: 40 }));
}

/** A string arbitrary chosen by the field's name (dates, time zones, ids…), else by its length bounds. */
function stringFor(name: string, schema: JsonSchema, hints: Hints): fc.Arbitrary<string> {
  const min = schema.minLength ?? 0;
  const max = schema.maxLength ?? 2000;
  if (/(^|_)(date|time|after|before|from|to)$/.test(name) || /^(due|start|end)_/.test(name)) return dateText;
  if (name === 'timezone') return timeZoneText;
  if (name === 'recurrence') return recurrenceText;
  if (name === 'id' || name === 'ids' || name.endsWith('_id')) return idText(hints);
  if (name === 'client_ref')
    return hints.clientRefs.length > 0
      ? fc.oneof(fc.constantFrom(...hints.clientRefs), text(min, max))
      : text(min, max);
  if (name === 'content_base64') return base64Text;
  if (name.endsWith('_url') || name.endsWith('_uri')) return urlText;
  if (name === 'mime_type') return mimeText;
  if (name === 'cursor') return cursorText;
  if (name === 'start' || name === 'end') {
    return fc.oneof(
      fc.constantFrom(
        '09:00',
        '17:30',
        '00:00',
        '23:59',
        '24:00',
        '9:00',
        '09:60',
        '25:00',
        '-01:00',
        '09:00:00',
      ),
      text(0, 10),
    );
  }
  return text(min, max);
}

function typesOf(schema: JsonSchema): readonly string[] {
  if (schema.type === undefined) return [];
  return typeof schema.type === 'string' ? [schema.type] : schema.type;
}

/**
 * `valid`: values the schema accepts (right types, lengths, bounds, enum members, required keys, no extra keys)
 * whose content is still hostile (broken dates, unknown zones, junk ids, odd text): what reaches the handlers.
 * `mutated`: mostly that, but each value may be of the wrong type or past its bounds, objects may gain unknown
 * keys or lose required ones.
 */
export type SchemaMode = 'valid' | 'mutated';

/** Values for `schema`, the field called `name`. */
export function fromSchema(
  schema: JsonSchema,
  hints: Hints,
  mode: SchemaMode,
  name = '',
  depth = 0,
): fc.Arbitrary<unknown> {
  const right = shaped(schema, hints, mode, name, depth);
  return mode === 'valid'
    ? right
    : fc.oneof({ weight: 12, arbitrary: right }, { weight: 1, arbitrary: wrongType });
}

function shaped(
  schema: JsonSchema,
  hints: Hints,
  mode: SchemaMode,
  name: string,
  depth: number,
): fc.Arbitrary<unknown> {
  const strict = mode === 'valid';
  if (schema.anyOf !== undefined && schema.anyOf.length > 0) {
    return fc.oneof(...schema.anyOf.map((s) => shaped(s, hints, mode, name, depth)));
  }
  if (schema.enum !== undefined && schema.enum.length > 0) {
    if (strict) return fc.constantFrom(...schema.enum);
    return fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...schema.enum) },
      { weight: 1, arbitrary: fc.constantFrom(...ENUM_VALUES, '', 'DONE', 'Todo', ' todo') },
      { weight: 1, arbitrary: text(0, 20) },
    );
  }
  const types = typesOf(schema);
  if (types.length > 1) {
    return fc.oneof(...types.map((t) => shaped({ ...schema, type: t }, hints, mode, name, depth)));
  }
  switch (types[0]) {
    case 'string': {
      const arb = stringFor(name, schema, hints);
      if (!strict) return arb;
      const min = schema.minLength ?? 0;
      const max = schema.maxLength ?? Number.MAX_SAFE_INTEGER;
      // Lengths as JSON Schema counts them (code points), and as zod does (UTF-16 units): both must fit.
      return arb.filter((v) => v.length >= min && v.length <= max && [...v].length >= min);
    }
    case 'integer':
    case 'number': {
      const integer = types[0] === 'integer';
      if (!strict) return numberAround(schema.minimum, schema.maximum, integer);
      const lo = schema.minimum ?? -1_000_000;
      const hi = schema.maximum ?? 1_000_000;
      return fc.oneof(
        integer ? fc.integer({ min: lo, max: hi }) : fc.double({ min: lo, max: hi, noNaN: true }),
        fc.constantFrom(lo, hi),
      );
    }
    case 'boolean':
      return strict
        ? fc.boolean()
        : fc.oneof(
            { weight: 8, arbitrary: fc.boolean() },
            { weight: 1, arbitrary: fc.constantFrom('true', 0, 1, 'yes') },
          );
    case 'null':
      return fc.constant(null);
    case 'array': {
      const item = schema.items ?? {};
      // The elements of an id list are ids (the field is called ids, its items have no name).
      const itemName = name === 'ids' ? 'id' : name === 'tags' || name === 'attendees' ? 'tag' : name;
      const maxItems = schema.maxItems ?? 20;
      const minItems = schema.minItems ?? 0;
      const element = fromSchema(item, hints, mode, itemName, depth + 1);
      const within = fc.array(element, { minLength: minItems, maxLength: Math.min(maxItems, minItems + 6) });
      const atBound = fc
        .tuple(element, fc.constantFrom(...(strict ? [maxItems] : [maxItems, maxItems + 1])))
        .map(([e, n]) => Array.from({ length: n }, () => e));
      return fc.oneof({ weight: 8, arbitrary: within }, { weight: 1, arbitrary: atBound });
    }
    case 'object':
    default:
      return objectShaped(schema, hints, mode, name, depth);
  }
}

function objectShaped(
  schema: JsonSchema,
  hints: Hints,
  mode: SchemaMode,
  name: string,
  depth: number,
): fc.Arbitrary<unknown> {
  if (depth > 6) return fc.constant({});
  const props = schema.properties ?? {};
  const keys = Object.keys(props);
  const additional = schema.additionalProperties;
  if (keys.length === 0 && typeof additional === 'object') {
    // A record (laptop_specs, update_items' changes): keys known to the server mixed with anything.
    const knownKeys = name === 'changes' ? CHANGE_FIELDS : ['cpu', 'ram_gb', 'gpu', 'disk'];
    const key = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...knownKeys) },
      { weight: 1, arbitrary: text(0, 30) },
    );
    const value =
      name === 'changes'
        ? fc.oneof(
            ...[
              'title',
              'due_date',
              'timezone',
              'recurrence',
              'project_id',
              'tags',
              'status',
              'external_url',
              'progress',
            ].map((field) =>
              field === 'tags'
                ? fc.array(text(0, 64), { maxLength: 4 })
                : field === 'status'
                  ? fc.constantFrom(...ENUM_VALUES)
                  : field === 'progress'
                    ? numberAround(0, 100, true)
                    : stringFor(field, {}, hints),
            ),
            wrongType,
          )
        : fromSchema(additional, hints, mode, '', depth + 1);
    return fc.dictionary(key, value, { maxKeys: 6 });
  }
  const required = schema.required ?? [];
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const k of keys) shape[k] = fromSchema(props[k] as JsonSchema, hints, mode, k, depth + 1);
  const base = fc.record(shape, { requiredKeys: [...required] });
  if (mode === 'valid') return base;
  // Mutations: an extra property (a near miss of a real one, or anything), a required one dropped.
  const extraKey = fc.oneof(
    keys.length > 0
      ? fc.constantFrom(...keys.map((k) => `${k}s`), ...keys.map((k) => k.toUpperCase()))
      : fc.constant('extra'),
    fc.constantFrom('__proto__', 'constructor', 'tenant_id', 'tenant', 'user_id', ''),
    fc.string({ maxLength: 20 }),
  );
  return fc
    .tuple(
      base,
      fc.option(fc.tuple(extraKey, fc.jsonValue({ maxDepth: 1 })), { freq: 8 }),
      required.length > 0 ? fc.option(fc.constantFrom(...required), { freq: 10 }) : fc.constant(null),
    )
    .map(([value, extra, drop]) => {
      const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
      if (extra !== null)
        Object.defineProperty(out, extra[0], {
          value: extra[1],
          enumerable: true,
          writable: true,
          configurable: true,
        });
      if (drop !== null) delete out[drop];
      return out;
    });
}

// ------------------------------------------------------------------------------------------- network safety

/** scheme://[user@]host inside a longer text. */
const URL_LIKE = /([a-z][a-z0-9+.-]*:[\\/]{2})([^/\\?#\s@]*@)?(\[[^\]]*\]|[^/\\?#\s:]*)/gi;

/** Host names (as the WHATWG URL parser writes them) that stay on this machine without a DNS query. */
function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return (
    h === '' ||
    /^127\.\d+\.\d+\.\d+\.?$/.test(h) ||
    h === 'localhost' ||
    h === 'localhost.' ||
    h === '[::1]' ||
    h === '[::ffff:7f00:1]'
  );
}

/**
 * `s`, or — when the URL parser the server uses reads it as a URL with a host that is not a loopback one (tabs,
 * backslashes and missing slashes included), or it contains such a URL — the same with 127.0.0.1 as the host.
 */
export function loopbackString(s: string): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(s);
  } catch {
    parsed = undefined;
  }
  if (parsed !== undefined && !isLoopbackHost(parsed.hostname)) {
    return `${parsed.protocol}//127.0.0.1${parsed.pathname}${parsed.search}`;
  }
  return s.replace(URL_LIKE, (whole: string, scheme: string, user: string | undefined, host: string) => {
    let hostname = host;
    try {
      hostname = new URL(`http://${host}`).hostname;
    } catch {
      // not a host: replaced below
    }
    return isLoopbackHost(hostname) ? whole : `${scheme}${user ?? ''}127.0.0.1`;
  });
}

/** Deep copy of a JSON-like value whose strings (keys too) name no host but loopback ones. */
export function loopbackOnly<T>(value: T): T {
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return loopbackString(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, inner] of Object.entries(v)) {
        Object.defineProperty(out, loopbackString(k), {
          value: walk(inner),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    return v;
  };
  return walk(value) as T;
}
