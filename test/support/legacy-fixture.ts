import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

/**
 * Builds a database exactly as the original Python mcp-pa (src/sqlite_database.py) left it: five `(id, data)`
 * tables whose `data` is `json.dumps(model.model_dump(), default=str)`.
 */

/** The original program's schema script, verbatim. */
export const LEGACY_SCHEMA = `
CREATE TABLE IF NOT EXISTS user_status (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS todos (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calendar_events (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_projects_status ON projects(id);
CREATE INDEX IF NOT EXISTS idx_todos_completed ON todos(id);
CREATE INDEX IF NOT EXISTS idx_calendar_events_dates ON calendar_events(id);
CREATE INDEX IF NOT EXISTS idx_documents_tags ON documents(id);
`;

export const LEGACY_TABLE_NAMES = [
  'user_status',
  'projects',
  'todos',
  'calendar_events',
  'documents',
] as const;
export type LegacyTableName = (typeof LEGACY_TABLE_NAMES)[number];

/** A JSON value as Python's json module sees it (no floats: Python and JS print them differently). */
export type PyJson = null | boolean | number | string | PyJson[] | { [key: string]: PyJson };

function pyString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i] as string;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    // ensure_ascii: everything outside ' '..'~' becomes \uXXXX (UTF-16 code units, lower-case hex).
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/** `json.dumps(value)` with Python's defaults: `", "` and `": "` separators, ensure_ascii, no indent. */
export function pyDumps(value: PyJson): string {
  if (value === null) return 'null';
  if (value === true) return 'true';
  if (value === false) return 'false';
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`pyDumps: only integers are supported, got ${value}`);
    return String(value);
  }
  if (typeof value === 'string') return pyString(value);
  if (Array.isArray(value)) return `[${value.map(pyDumps).join(', ')}]`;
  return `{${Object.entries(value)
    .map(([k, v]) => `${pyString(k)}: ${pyDumps(v)}`)
    .join(', ')}}`;
}

export interface LegacyFixtureTask {
  id: string;
  title: string;
  status: 'todo' | 'in_progress' | 'done' | 'blocked';
  due_date: string | null;
  completed_at: string | null;
}
export interface LegacyFixtureProject {
  id: string;
  name: string;
  status: string;
  tasks: LegacyFixtureTask[];
}
export interface LegacyFixtureTodo {
  id: string;
  title: string;
  completed: boolean;
  completed_at: string | null;
  reminder_date: string | null;
  due_date: string | null;
  tags: string[];
}
export interface LegacyFixtureEvent {
  id: string;
  title: string;
  start_time: string;
  end_time: string;
  location: string | null;
  attendees: string[];
}
export interface LegacyFixtureDocument {
  id: string;
  title: string;
  kind: 'uploaded' | 'missing' | 'external';
  file_path: string;
  checksum: string | null;
  external_url: string | null;
  /** The bytes on disk, for the uploaded one. */
  bytes: Buffer | null;
}

export interface LegacyFixture {
  /** The database file. */
  file: string;
  /** The original program's document folder. */
  docsDir: string;
  status: {
    name: string;
    city: string;
    state: string;
    country: string;
    os: string;
    model: string;
    notes: string;
  };
  projects: LegacyFixtureProject[];
  todos: LegacyFixtureTodo[];
  events: LegacyFixtureEvent[];
  documents: LegacyFixtureDocument[];
  /** A record carrying a field the original models never had, and that field. */
  extraField: { table: 'todos'; id: string; key: string; value: PyJson };
  /** Every row as written, by table, in insertion order. */
  rows: Record<LegacyTableName, { id: string | number; data: string }[]>;
}

const PERMISSIONS: PyJson = {
  file_system: true,
  browser: true,
  terminal: true,
  database: true,
  network: false,
  available_to_setup: ['network'],
};

/**
 * Writes a database in the original program's shape at `file` (its parent folder is created), with realistic
 * rows, and the uploaded document's bytes under `docsDir` (default: `documents` beside the database).
 */
export function buildLegacyDatabase(
  file: string,
  docsDir = path.join(path.dirname(file), 'documents'),
): LegacyFixture {
  mkdirSync(path.dirname(file), { recursive: true });
  mkdirSync(docsDir, { recursive: true });

  const status = {
    name: 'Zoë Alvarez',
    city: 'Seattle',
    state: 'WA',
    country: 'USA',
    os: 'macOS 14.5',
    model: 'MacBook Pro M3',
    notes: 'Working remotely this week — back in the office on Monday',
  };

  const projects: LegacyFixtureProject[] = [
    {
      id: '6f1c2a4e-8d3b-4b7a-9c2e-1a2b3c4d5e6f',
      name: 'Website redesign',
      status: 'in_progress',
      tasks: [
        {
          id: '0b9e7d5c-3a21-4f6e-8b4d-7c6a5e4f3d2c',
          title: 'Draft wireframes',
          status: 'todo',
          due_date: '2025-01-25 17:00:00',
          completed_at: null,
        },
        {
          id: '1c8f6e4d-2b10-4e5d-9a3c-6b5a4d3c2b1a',
          title: 'Collect stakeholder feedback',
          status: 'done',
          due_date: null,
          completed_at: '2025-01-18 11:20:05.004211',
        },
      ],
    },
    {
      id: '7a2d3b5f-9e4c-4c8b-8d3f-2b3c4d5e6f70',
      name: 'Café relaunch',
      status: 'not_started',
      tasks: [
        {
          id: '2d7e5f3c-1a0f-4d4c-8b2b-5a4b3c2d1e0f',
          title: 'Pick the crème brûlée supplier',
          status: 'in_progress',
          due_date: null,
          completed_at: null,
        },
        {
          id: '3e6d4c2b-0f9e-4c3b-9a1a-4f3e2d1c0b9a',
          title: 'Health inspection',
          status: 'blocked',
          due_date: null,
          completed_at: null,
        },
        {
          id: '4f5c3b1a-9e8d-4b2a-8f0f-3e2d1c0b9a8f',
          title: 'Order signage',
          status: 'todo',
          // The original kept the offset of a time given with one: str(aware datetime).
          due_date: '2025-02-05 17:00:00+01:00',
          completed_at: null,
        },
      ],
    },
    {
      id: '8b3e4c6a-0f5d-4d9c-9e4a-3c4d5e6f7081',
      name: 'Tax return 2024',
      status: 'on_hold',
      tasks: [],
    },
  ];

  const projectRows = projects.map((p, i) => ({
    id: p.id,
    data: pyDumps({
      id: p.id,
      name: p.name,
      description: i === 1 ? 'Reopen the café with a new menu: crêpes & «specials»' : `About ${p.name}`,
      status: p.status,
      priority: ['high', 'urgent', 'low'][i] as string,
      start_date: i === 0 ? '2025-01-20 09:00:00' : null,
      end_date: i === 0 ? '2025-03-31 17:00:00' : null,
      created_at: `2025-01-1${5 + i} 09:31:02.118204`,
      updated_at: `2025-01-1${6 + i} 14:05:44`,
      tasks: p.tasks.map((t, j) => ({
        id: t.id,
        title: t.title,
        description: j === 0 ? `First step of ${p.name}` : null,
        status: t.status,
        priority: 'medium',
        due_date: t.due_date,
        created_at: '2025-01-16 14:05:44.901877',
        updated_at: '2025-01-16 14:05:44.901880',
        completed_at: t.completed_at,
        tags: j === 0 ? ['phase-1'] : [],
      })),
      tags: i === 1 ? ['café', 'business'] : ['work'],
      notes: i === 2 ? 'Waiting for the 1099 forms' : null,
      progress: [10, 0, 0][i] as number,
    }),
  }));

  const todos: LegacyFixtureTodo[] = [
    {
      id: 'a3d4e5f6-1b2c-4d3e-9f8a-7b6c5d4e3f2a',
      title: 'Renew passport',
      completed: true,
      completed_at: '2025-01-27 18:42:10.003391',
      reminder_date: '2025-01-28 09:00:00',
      due_date: '2025-02-01 12:00:00',
      tags: ['personal'],
    },
    {
      id: 'b4e5f6a7-2c3d-4e4f-8a9b-8c7d6e5f4a3b',
      title: 'Call the dentist',
      completed: false,
      completed_at: null,
      reminder_date: '2025-02-03 08:30:00',
      due_date: '2025-02-04 10:00:00',
      tags: ['health', 'personal'],
    },
    {
      id: 'c5f6a7b8-3d4e-4f5a-9b0c-9d8e7f6a5b4c',
      title: 'Buy groceries',
      completed: false,
      completed_at: null,
      reminder_date: null,
      due_date: null,
      tags: [],
    },
    {
      id: 'd6a7b8c9-4e5f-4a6b-8c1d-0e9f8a7b6c5d',
      title: 'Send invoice to ACME',
      completed: true,
      completed_at: '2025-01-20 16:00:00',
      reminder_date: null,
      due_date: '2025-01-20 17:00:00',
      tags: ['work', 'finance'],
    },
    {
      id: 'e7b8c9d0-5f6a-4b7c-9d2e-1f0a9b8c7d6e',
      title: 'Résumé update',
      completed: false,
      completed_at: null,
      reminder_date: '2025-02-10 09:00:00',
      due_date: null,
      tags: ['career'],
    },
  ];
  const extraField = {
    table: 'todos' as const,
    id: 'c5f6a7b8-3d4e-4f5a-9b0c-9d8e7f6a5b4c',
    key: 'energy_level',
    value: 'low',
  };
  const todoRows = todos.map((t, i) => {
    const data: { [key: string]: PyJson } = {
      id: t.id,
      title: t.title,
      description: i === 0 ? 'Book appointment' : null,
      due_date: t.due_date,
      reminder_date: t.reminder_date,
      priority: ['urgent', 'high', 'low', 'medium', 'medium'][i] as string,
      completed: t.completed,
      created_at: `2025-01-15 10:00:0${i}.554120`,
      completed_at: t.completed_at,
      tags: t.tags,
    };
    if (t.id === extraField.id) data[extraField.key] = extraField.value;
    return { id: t.id, data: pyDumps(data) };
  });

  const events: LegacyFixtureEvent[] = [
    {
      id: 'c7b8a9d0-2e3f-4a5b-8c7d-6e5f4a3b2c1d',
      title: 'Design review',
      start_time: '2025-01-27 15:00:00',
      end_time: '2025-01-27 16:00:00',
      location: 'Zoom',
      attendees: ['bob@example.com', 'carol@example.com'],
    },
    {
      id: 'd8c9b0e1-3f4a-4b6c-9d8e-7f6a5b4c3d2e',
      title: 'Dîner with François 🍷',
      start_time: '2025-02-14 19:30:00',
      end_time: '2025-02-14 22:00:00',
      location: 'Café de Flore',
      attendees: ['François Dupont'],
    },
    {
      id: 'e9d0c1f2-4a5b-4c7d-8e9f-8a7b6c5d4e3f',
      title: 'Quarterly planning',
      start_time: '2025-03-03 09:00:00.250000',
      end_time: '2025-03-03 12:00:00',
      location: null,
      attendees: ['team@example.com', 'dave@example.com', 'erin@example.com'],
    },
  ];
  const eventRows = events.map((e, i) => ({
    id: e.id,
    data: pyDumps({
      id: e.id,
      title: e.title,
      description: i === 0 ? 'Review wireframes' : null,
      start_time: e.start_time,
      end_time: e.end_time,
      location: e.location,
      attendees: e.attendees,
      reminder_minutes: [15, 60, 30][i] as number,
      created_at: `2025-01-16 14:10:2${i}.731005`,
      tags: [],
    }),
  }));

  // The uploaded file: binary (not valid UTF-8), as the original program stored it: <docs>/<id><ext>.
  const uploadedId = 'e1f2a3b4-5c6d-4e7f-8a9b-0c1d2e3f4a5b';
  const uploadedBytes = Buffer.concat([
    Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1'),
    Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 37 + 11) % 256)),
    Buffer.from('\n%%EOF\n', 'latin1'),
  ]);
  const uploadedPath = path.join(docsDir, `${uploadedId}.pdf`);
  writeFileSync(uploadedPath, uploadedBytes);
  const missingId = 'f2a3b4c5-6d7e-4f8a-9b0c-1d2e3f4a5b6c';
  const missingPath = path.join(docsDir, `${missingId}.png`);
  const documents: LegacyFixtureDocument[] = [
    {
      id: uploadedId,
      title: 'invoice.pdf',
      kind: 'uploaded',
      file_path: uploadedPath,
      checksum: createHash('sha256').update(uploadedBytes).digest('hex'),
      external_url: null,
      bytes: uploadedBytes,
    },
    {
      id: missingId,
      title: 'whiteboard.png',
      kind: 'missing',
      file_path: missingPath,
      checksum: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
      external_url: null,
      bytes: null,
    },
    {
      id: '5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a',
      title: 'Team drive spec',
      kind: 'external',
      file_path: '',
      checksum: null,
      external_url: 'https://drive.google.com/file/d/abc123/view',
      bytes: null,
    },
  ];
  const documentRows = documents.map((d) => {
    const description = d.kind === 'uploaded' ? 'January invoice' : d.kind === 'missing' ? 'Sketch' : null;
    const tags = d.kind === 'uploaded' ? ['finance'] : ['work'];
    const mime = d.kind === 'uploaded' ? 'application/pdf' : d.kind === 'missing' ? 'image/png' : null;
    return {
      id: d.id,
      data: pyDumps({
        id: d.id,
        title: d.title,
        description,
        file_path: d.file_path,
        document_type: d.kind === 'uploaded' ? 'pdf' : d.kind === 'missing' ? 'image' : 'other',
        mime_type: mime,
        size_bytes: d.kind === 'uploaded' ? uploadedBytes.length : d.kind === 'missing' ? 48213 : 0,
        created_at: '2025-01-17 08:12:45.220981',
        updated_at: '2025-01-17 08:12:45.220985',
        tags,
        metadata: d.kind === 'external' ? {} : { description: description ?? '', tags },
        external_url: d.external_url,
        checksum: d.checksum,
      }),
    };
  });

  const statusRow = {
    id: 1,
    data: pyDumps({
      name: status.name,
      current_location: { city: status.city, state: status.state, country: status.country, details: null },
      laptop_details: { os: status.os, model: status.model, specs: { ram_gb: 36, cpu: 'M3 Max' } },
      permissions: PERMISSIONS,
      last_updated: '2025-01-15 09:30:12.345678',
      active_projects: [projects[0]?.id ?? ''],
      notes: status.notes,
    }),
  };

  const rows: LegacyFixture['rows'] = {
    user_status: [statusRow],
    projects: projectRows,
    todos: todoRows,
    calendar_events: eventRows,
    documents: documentRows,
  };

  const db = new Database(file);
  try {
    // The original connection ran in autocommit mode with the default (rollback) journal.
    db.exec(LEGACY_SCHEMA);
    db.pragma('foreign_keys = ON');
    const write = db.transaction(() => {
      db.prepare('INSERT OR REPLACE INTO user_status (id, data) VALUES (1, ?)').run(statusRow.data);
      for (const table of ['projects', 'todos', 'calendar_events', 'documents'] as const) {
        const stmt = db.prepare(`INSERT INTO ${table} (id, data) VALUES (?, ?)`);
        for (const r of rows[table]) stmt.run(r.id, r.data);
      }
    });
    write();
  } finally {
    db.close();
  }
  return { file, docsDir, status, projects, todos, events, documents, extraField, rows };
}

/** Every row of the original tables in a database file, by table, ordered by rowid. */
export function readLegacyTables(
  file: string,
): Record<LegacyTableName, { id: string | number; data: string }[]> {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const out = {} as Record<LegacyTableName, { id: string | number; data: string }[]>;
    for (const t of LEGACY_TABLE_NAMES) {
      out[t] = db.prepare(`SELECT id, data FROM "${t}" ORDER BY rowid`).all() as {
        id: string | number;
        data: string;
      }[];
    }
    return out;
  } finally {
    db.close();
  }
}

/** The SQL that created each original table and index, by name. */
export function legacySchemaSql(file: string): Record<string, string> {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare(
        `SELECT name, sql FROM sqlite_master WHERE name IN (${LEGACY_TABLE_NAMES.map(() => '?').join(', ')})
           OR name IN ('idx_projects_status', 'idx_todos_completed', 'idx_calendar_events_dates', 'idx_documents_tags')`,
      )
      .all(...LEGACY_TABLE_NAMES) as { name: string; sql: string }[];
    return Object.fromEntries(rows.map((r) => [r.name, r.sql]));
  } finally {
    db.close();
  }
}
