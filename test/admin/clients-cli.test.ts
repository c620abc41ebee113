/**
 * `mcp-pa clients …` run in-process (runClientsCommand) on HTTP mode's embedded PGlite database in a temporary data
 * folder, what each command did checked in the database itself; then a client added through the same code path
 * (addClient) on a running server completes the authorization-code flow with its client secret, and removing it
 * cuts its access token off at /mcp.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addClient, removeClient, runClientsCommand } from '../../src/admin/clients.js';
import { hashClientSecret } from '../../src/auth/client-rules.js';
import { createOidcAdapterFactory } from '../../src/auth/oidc-adapter.js';
import { loadConfig } from '../../src/config/index.js';
import { openPostgresStore, type PostgresStore } from '../../src/storage/postgres/index.js';
import { tempDir } from '../support/helpers.js';
import { quietLogger } from '../support/postgres.js';
import { pkcePair, startOAuthFixture, type OAuthFixture } from '../auth/oauth-fixture.js';

type Json = Record<string, unknown>;

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

let data: { dir: string; cleanup: () => void };
/** Config files: the defaults (none, client_secret_basic, private_key_jwt) and every method enabled. */
let configFiles: { defaults: string; all: string };

beforeAll(() => {
  data = tempDir('mcp-pa-clients-');
  configFiles = { defaults: path.join(data.dir, 'defaults.json'), all: path.join(data.dir, 'all.json') };
  writeFileSync(configFiles.defaults, '{}');
  writeFileSync(
    configFiles.all,
    JSON.stringify({
      authentication: {
        client_auth_methods: ['none', 'client_secret_basic', 'private_key_jwt', 'tls_client_auth'],
      },
    }),
  );
});
afterAll(() => {
  data?.cleanup();
});

async function run(args: string[], config: 'defaults' | 'all' = 'defaults'): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const loaded = loadConfig({
    env: { MCP_MODE: 'http', MCP_DATA_DIR: data.dir, MCP_DATABASE_TYPE: 'pglite' },
    configFile: configFiles[config],
  });
  const code = await runClientsCommand(
    args,
    loaded.config,
    { stdin: new PassThrough(), stdout, stderr, stdinIsTerminal: false },
    quietLogger,
  );
  return { code, out, err };
}

/** The data folder's database, opened in this process (the command has closed it). */
async function withDb<T>(fn: (store: PostgresStore) => Promise<T>): Promise<T> {
  const store = await openPostgresStore(
    { kind: 'pglite', dataDir: path.join(data.dir, 'pglite') },
    { logger: quietLogger, vectorDimensions: null },
  );
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function clientRow(id: string): Promise<Json | undefined> {
  return withDb(async (store) => (await new (createOidcAdapterFactory(store))('Client').find(id)) as Json);
}

/** A client's stored record, and every row of oauth_state as text (to look for a secret anywhere in it). */
async function inspect(id: string): Promise<{ row: Json | undefined; text: string }> {
  return withDb(async (store) => ({
    row: (await new (createOidcAdapterFactory(store))('Client').find(id)) as Json | undefined,
    text: await stateText(store),
  }));
}

function stateText(store: PostgresStore): Promise<string> {
  return store.withServerState(async (sql) =>
    (
      await sql.query<{ t: string }>(
        `SELECT model || ' ' || id || ' ' || payload::text AS t FROM oauth_state`,
      )
    ).rows
      .map((r) => r.t)
      .join('\n'),
  );
}

async function clientCount(): Promise<number> {
  return withDb((store) =>
    store.withServerState(
      async (sql) =>
        (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM oauth_state WHERE model = 'Client'`))
          .rows[0]?.n ?? -1,
    ),
  );
}

function createdId(r: Run): string {
  expect(r.err, r.err).toBe('');
  expect(r.code).toBe(0);
  const id = /client_id: (\S+)/.exec(r.out)?.[1];
  expect(id).toMatch(/^cli_[A-Za-z0-9_-]{22}$/);
  return id as string;
}

async function publicJwks(): Promise<Json> {
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', use: 'sig', alg: 'ES256' }] };
}

function writeJson(name: string, value: unknown): string {
  const file = path.join(data.dir, name);
  writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

describe('mcp-pa clients (admin command) on PGlite', () => {
  it('add --auth-method none: a public client, its id printed, its metadata stored with no secret', async () => {
    const r = await run([
      'add',
      '--name',
      'Desktop app',
      '--redirect-uri',
      'http://127.0.0.1/callback',
      '--redirect-uri',
      'com.example.desktop:/callback',
      '--auth-method',
      'none',
      '--scope',
      'pa.read  pa.write',
    ]);
    const id = createdId(r);
    expect(r.out).toContain(`created client ${id} (Desktop app, none)`);
    expect(r.out).not.toMatch(/secret/i);
    const row = await clientRow(id);
    expect(row).toEqual({
      client_id: id,
      client_name: 'Desktop app',
      redirect_uris: ['http://127.0.0.1/callback', 'com.example.desktop:/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'pa.read pa.write',
      client_id_issued_at: expect.any(Number),
      // Only loopback and app-scheme redirects: a native app, as dynamic registration would make it.
      application_type: 'native',
    });
    expect(Math.abs((row?.['client_id_issued_at'] as number) - Date.now() / 1000)).toBeLessThan(60);
  });

  it('add --auth-method client_secret_basic: the secret is shown once and stored only as a digest', async () => {
    const r = await run([
      'add',
      '--name',
      'Web app',
      '--redirect-uri',
      'https://app.example/callback',
      '--auth-method',
      'client_secret_basic',
    ]);
    const id = createdId(r);
    const secret = /client_secret: (\S+)/.exec(r.out)?.[1] as string;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(r.out).toContain('Store the client secret now; it cannot be shown again');
    const { row, text } = await inspect(id);
    expect(row?.['client_secret']).toBe(hashClientSecret(secret));
    expect(row?.['token_endpoint_auth_method']).toBe('client_secret_basic');
    expect(row?.['application_type']).toBeUndefined();
    expect(text).not.toContain(secret);

    // Never again: not in the listing (human or JSON).
    const list = await run(['list']);
    const json = await run(['list', '--json']);
    expect(list.out + json.out).not.toContain(secret);
    expect(list.out + json.out).not.toContain(hashClientSecret(secret));

    // --json: the registration as a document, the secret in it (once).
    const j = await run([
      'add',
      '--name',
      'Scripted',
      '--redirect-uri',
      'https://app.example/cb2',
      '--auth-method',
      'client_secret_basic',
      '--json',
    ]);
    expect(j.code).toBe(0);
    const doc = JSON.parse(j.out) as Json;
    expect(doc).toMatchObject({
      client_id: expect.stringMatching(/^cli_/),
      client_name: 'Scripted',
      token_endpoint_auth_method: 'client_secret_basic',
      client_secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    });
    const stored = await inspect(String(doc['client_id']));
    expect(stored.row?.['client_secret']).toBe(hashClientSecret(String(doc['client_secret'])));
    expect(stored.text).not.toContain(String(doc['client_secret']));
  });

  it('add --auth-method private_key_jwt with a JWKS file or a JWKS URI', async () => {
    const jwks = await publicJwks();
    const file = writeJson('client-jwks.json', jwks);
    const a = await run([
      'add',
      '--name',
      'Service',
      '--redirect-uri',
      'https://svc.example/cb',
      '--auth-method',
      'private_key_jwt',
      '--jwks-file',
      file,
    ]);
    const idA = createdId(a);
    expect(a.out).not.toMatch(/secret/i);
    const rowA = await clientRow(idA);
    expect(rowA?.['jwks']).toEqual(jwks);
    expect(rowA?.['jwks_uri']).toBeUndefined();
    expect(rowA?.['client_secret']).toBeUndefined();

    const b = await run([
      'add',
      '--name',
      'Service 2',
      '--redirect-uri',
      'https://svc.example/cb',
      '--auth-method',
      'private_key_jwt',
      '--jwks-uri',
      'https://svc.example/.well-known/jwks.json',
    ]);
    const rowB = await clientRow(createdId(b));
    expect(rowB?.['jwks_uri']).toBe('https://svc.example/.well-known/jwks.json');
    expect(rowB?.['jwks']).toBeUndefined();
    expect(rowB?.['token_endpoint_auth_method']).toBe('private_key_jwt');
  });

  it('add --auth-method tls_client_auth with one certificate subject option (when enabled)', async () => {
    const a = await run(
      [
        'add',
        '--name',
        'Device',
        '--redirect-uri',
        'https://device.example/cb',
        '--auth-method',
        'tls_client_auth',
        '--tls-san-dns',
        'device.example.com',
      ],
      'all',
    );
    expect(a.code).toBe(0);
    // No client CA is configured: said, but the client is made (the operator may set the CA next).
    expect(a.err).toMatch(/warning: server\.tls_client_ca \(MCP_TLS_CLIENT_CA\) is not set/);
    const id = /client_id: (\S+)/.exec(a.out)?.[1] as string;
    const row = await clientRow(id);
    expect(row?.['token_endpoint_auth_method']).toBe('tls_client_auth');
    expect(row?.['tls_client_auth_san_dns']).toBe('device.example.com');

    const b = await run(
      [
        'add',
        '--name',
        'Device 2',
        '--redirect-uri',
        'https://device.example/cb',
        '--auth-method',
        'tls_client_auth',
        '--tls-subject-dn',
        'CN=device2,O=Example',
      ],
      'all',
    );
    expect(b.code).toBe(0);
    const rowB = await clientRow(/client_id: (\S+)/.exec(b.out)?.[1] as string);
    expect(rowB?.['tls_client_auth_subject_dn']).toBe('CN=device2,O=Example');
    expect(rowB?.['tls_client_auth_san_dns']).toBeUndefined();
  });

  it('list shows every client with its source: added here, registered dynamically, URL ids', async () => {
    const dcrId = randomBytes(20).toString('base64url');
    const urlId = 'https://tool.example/oauth/client.json';
    await withDb(async (store) => {
      const clients = new (createOidcAdapterFactory(store))('Client');
      await clients.upsert(
        dcrId,
        {
          client_id: dcrId,
          client_name: 'Registered dynamically',
          redirect_uris: ['http://127.0.0.1/cb'],
          token_endpoint_auth_method: 'none',
          client_id_issued_at: Math.floor(Date.now() / 1000) + 5,
        },
        undefined,
      );
      await clients.upsert(
        urlId,
        { client_id: urlId, client_name: 'A URL client', redirect_uris: ['https://tool.example/cb'] },
        undefined,
      );
    });
    const json = await run(['list', '--json']);
    expect(json.code).toBe(0);
    const listed = JSON.parse(json.out) as Json[];
    const byId = new Map(listed.map((c) => [c['id'], c]));
    expect(byId.get(dcrId)).toEqual({
      id: dcrId,
      name: 'Registered dynamically',
      authMethod: 'none',
      redirectUris: ['http://127.0.0.1/cb'],
      source: 'dcr',
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(byId.get(urlId)).toMatchObject({ source: 'url', authMethod: null, createdAt: null });
    const cli = listed.filter((c) => c['source'] === 'cli');
    expect(cli.length).toBeGreaterThanOrEqual(6);
    expect(cli.map((c) => c['name'])).toEqual(expect.arrayContaining(['Desktop app', 'Web app', 'Service']));
    expect(listed.find((c) => c['name'] === 'Desktop app')).toMatchObject({
      authMethod: 'none',
      redirectUris: ['http://127.0.0.1/callback', 'com.example.desktop:/callback'],
    });

    const table = await run(['list']);
    expect(table.code).toBe(0);
    const lines = table.out.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+AUTH METHOD\s+REDIRECT URIS\s+SOURCE\s+CREATED$/);
    expect(lines).toHaveLength(listed.length + 1);
    const dcrLine = lines.find((l) => l.startsWith(dcrId)) as string;
    expect(dcrLine).toMatch(
      /Registered dynamically\s+none\s+http:\/\/127\.0\.0\.1\/cb\s+dcr\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC$/,
    );
    expect(lines.find((l) => l.startsWith(urlId))).toMatch(
      /\(default\)\s+https:\/\/tool\.example\/cb\s+url\s+-$/,
    );
  });

  it('remove deletes the client and revokes everything issued to it, and nothing else', async () => {
    const id = createdId(
      await run([
        'add',
        '--name',
        'Doomed',
        '--redirect-uri',
        'https://d.example/cb',
        '--auth-method',
        'none',
      ]),
    );
    const other = createdId(
      await run([
        'add',
        '--name',
        'Survivor',
        '--redirect-uri',
        'https://s.example/cb',
        '--auth-method',
        'none',
      ]),
    );
    await withDb(async (store) => {
      const A = createOidcAdapterFactory(store);
      for (const [client, g] of [
        [id, 'grant-doomed'],
        [other, 'grant-survivor'],
      ] as const) {
        await new A('Grant').upsert(g, { accountId: 'acc-1', clientId: client, jti: g }, 3600);
        await new A('AccessToken').upsert(
          `at-${g}`,
          { grantId: g, clientId: client, accountId: 'acc-1' },
          600,
        );
        await new A('RefreshToken').upsert(
          `rt-${g}`,
          { grantId: g, clientId: client, accountId: 'acc-1' },
          3600,
        );
        await new A('AuthorizationCode').upsert(`ac-${g}`, { grantId: g, clientId: client }, 60);
        await store.withServerState((sql) =>
          sql.query(`INSERT INTO oauth_grant_usage (grant_id, last_used_at) VALUES ($1, now())`, [g]),
        );
      }
      // Issued to the client without a grant.
      await new A('RegistrationAccessToken').upsert('rat-doomed', { clientId: id }, undefined);
      // A session is the user's, not the client's: it stays.
      await new A('Session').upsert('sess-1', { accountId: 'acc-1', uid: 'u1' }, 3600);
    });

    const r = await run(['remove', id]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`removed client ${id}: revoked 1 grant(s) and deleted 4 token(s)`);

    const left = await withDb((store) =>
      store.withServerState(async (sql) => ({
        state: (await sql.query<{ model: string; id: string }>(`SELECT model, id FROM oauth_state`)).rows.map(
          (row) => `${row.model}:${row.id}`,
        ),
        usage: (await sql.query<{ grant_id: string }>(`SELECT grant_id FROM oauth_grant_usage`)).rows.map(
          (row) => row.grant_id,
        ),
      })),
    );
    expect(left.state).not.toContain(`Client:${id}`);
    for (const gone of [
      'Grant:grant-doomed',
      'AccessToken:at-grant-doomed',
      'RefreshToken:rt-grant-doomed',
    ]) {
      expect(left.state).not.toContain(gone);
    }
    expect(left.state).not.toContain('AuthorizationCode:ac-grant-doomed');
    expect(left.state).not.toContain('RegistrationAccessToken:rat-doomed');
    expect(left.usage).not.toContain('grant-doomed');
    expect(left.state).toEqual(
      expect.arrayContaining([
        `Client:${other}`,
        'Grant:grant-survivor',
        'AccessToken:at-grant-survivor',
        'RefreshToken:rt-grant-survivor',
        'AuthorizationCode:ac-grant-survivor',
        'Session:sess-1',
      ]),
    );
    expect(left.usage).toContain('grant-survivor');

    // Gone: a second remove says so.
    const again = await run(['remove', id]);
    expect(again.code).toBe(1);
    expect(again.err).toBe(`mcp-pa clients: there is no client ${id} (see mcp-pa clients list)\n`);
  });

  it('rotate-secret makes a new secret (shown once) for client_secret_basic clients only', async () => {
    const add = await run([
      'add',
      '--name',
      'Rotating',
      '--redirect-uri',
      'https://r.example/cb',
      '--auth-method',
      'client_secret_basic',
    ]);
    const id = createdId(add);
    const first = /client_secret: (\S+)/.exec(add.out)?.[1] as string;
    const r = await run(['rotate-secret', id]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const second = /client_secret: (\S+)/.exec(r.out)?.[1] as string;
    expect(second).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(second).not.toBe(first);
    expect(r.out).toContain('Store the client secret now; it cannot be shown again.');
    const { row, text } = await inspect(id);
    expect(row?.['client_secret']).toBe(hashClientSecret(second));
    expect(row?.['client_name']).toBe('Rotating');
    expect(text).not.toContain(second);

    const publicId = createdId(
      await run([
        'add',
        '--name',
        'Public',
        '--redirect-uri',
        'https://p.example/cb',
        '--auth-method',
        'none',
      ]),
    );
    const refused = await run(['rotate-secret', publicId]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain(
      `client ${publicId} authenticates with none, not client_secret_basic: only client_secret_basic clients have a secret`,
    );
    expect((await clientRow(publicId))?.['client_secret']).toBeUndefined();

    const unknown = await run(['rotate-secret', 'cli_nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('there is no client cli_nope (see mcp-pa clients list)');
  });

  it('refuses bad command lines and bad values with the option, the reason and what is allowed', async () => {
    const before = await clientCount();
    const jwks = await publicJwks();
    const base = ['add', '--name', 'X', '--redirect-uri', 'https://x.example/cb'];
    const privateJwk = async (): Promise<Json> => {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      return { keys: [await exportJWK(privateKey)] };
    };
    const cases: [string[], number, RegExp, ('defaults' | 'all')?][] = [
      [[], 2, /missing command[\s\S]*usage:/],
      [['frobnicate'], 2, /unknown command "frobnicate"/],
      [
        ['add', '--redirect-uri', 'https://x.example/cb', '--auth-method', 'none'],
        2,
        /--name NAME is needed/,
      ],
      [['add', '--name', 'X', '--auth-method', 'none'], 2, /at least one --redirect-uri URI is needed/],
      [
        base,
        2,
        /--auth-method METHOD is needed \(one of none, client_secret_basic, private_key_jwt, tls_client_auth\)/,
      ],
      [
        [...base, '--auth-method', 'client_secret_post'],
        2,
        /--auth-method "client_secret_post" is not a client authentication method \(allowed: none, client_secret_basic, private_key_jwt, tls_client_auth\)/,
      ],
      [
        [...base, '--auth-method', 'tls_client_auth', '--tls-san-dns', 'a.example'],
        1,
        /--auth-method tls_client_auth is not enabled on this server: authentication\.client_auth_methods is \[none, client_secret_basic, private_key_jwt\]; add tls_client_auth to that setting first/,
      ],
      [[...base, '--auth-method', 'none', '--colour'], 2, /--colour/],
      [[...base, '--auth-method', 'none', 'extra'], 2, /unexpected argument "extra"/],
      [
        ['add', '--name', '  ', '--redirect-uri', 'https://x.example/cb', '--auth-method', 'none'],
        1,
        /--name must not be empty/,
      ],
      [
        ['add', '--name', 'n'.repeat(201), '--redirect-uri', 'https://x.example/cb', '--auth-method', 'none'],
        1,
        /--name is 201 characters; at most 200 are allowed/,
      ],
      [
        ['add', '--name', 'X', '--redirect-uri', 'http://x.example/cb', '--auth-method', 'none'],
        1,
        /--redirect-uri "http:\/\/x\.example\/cb" may use http only on a loopback host .*\(allowed: https:\/\/…/,
      ],
      [
        ['add', '--name', 'X', '--redirect-uri', 'javascript:alert(1)', '--auth-method', 'none'],
        1,
        /--redirect-uri "javascript:alert\(1\)" must not use the javascript: scheme/,
      ],
      [
        ['add', '--name', 'X', '--redirect-uri', 'https://x.example/cb#frag', '--auth-method', 'none'],
        1,
        /must not contain a fragment/,
      ],
      [
        ['add', '--name', 'X', '--redirect-uri', 'https://*.example/cb', '--auth-method', 'none'],
        1,
        /must not contain a wildcard/,
      ],
      [
        ['add', '--name', 'X', '--redirect-uri', 'not a uri', '--auth-method', 'none'],
        1,
        /--redirect-uri "not a uri" is not an absolute URI/,
      ],
      [
        [...base, '--auth-method', 'private_key_jwt'],
        1,
        /--auth-method private_key_jwt needs exactly one of --jwks-file FILE or --jwks-uri URL/,
      ],
      [
        [
          ...base,
          '--auth-method',
          'private_key_jwt',
          '--jwks-file',
          writeJson('j1.json', jwks),
          '--jwks-uri',
          'https://x.example/jwks',
        ],
        2,
        /give either --jwks-file or --jwks-uri, not both/,
      ],
      [
        [
          ...base,
          '--auth-method',
          'private_key_jwt',
          '--jwks-file',
          writeJson('private.json', await privateJwk()),
        ],
        1,
        /--jwks-file: keys\[0\] contains private or secret key material \(d\): give the client’s public keys only/,
      ],
      [
        [
          ...base,
          '--auth-method',
          'private_key_jwt',
          '--jwks-file',
          writeJson('oct.json', { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }),
        ],
        1,
        /--jwks-file: keys\[0\] contains private or secret key material \(k\)/,
      ],
      [
        [...base, '--auth-method', 'private_key_jwt', '--jwks-file', writeJson('empty.json', { keys: [] })],
        1,
        /--jwks-file: must be a JSON Web Key Set with at least one key/,
      ],
      [
        [
          ...base,
          '--auth-method',
          'private_key_jwt',
          '--jwks-file',
          writeJson('bad-ec.json', { keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }] }),
        ],
        1,
        /--jwks-file: keys\[0\] is not a valid EC public key/,
      ],
      [
        [
          ...base,
          '--auth-method',
          'private_key_jwt',
          '--jwks-file',
          writeJson('notjson.json', '{ keys: nope'),
        ],
        1,
        /--jwks-file: .*notjson\.json is not JSON/,
      ],
      [
        [...base, '--auth-method', 'private_key_jwt', '--jwks-file', path.join(data.dir, 'missing.json')],
        1,
        /--jwks-file: cannot read .*missing\.json \(no such file\)/,
      ],
      [
        [...base, '--auth-method', 'private_key_jwt', '--jwks-uri', 'http://x.example/jwks'],
        1,
        /--jwks-uri must use https:\/\//,
      ],
      [
        [...base, '--auth-method', 'none', '--jwks-file', writeJson('j2.json', jwks)],
        1,
        /--jwks-file and --jwks-uri are only for --auth-method private_key_jwt/,
      ],
      [
        [...base, '--auth-method', 'tls_client_auth'],
        1,
        /tls_client_auth needs exactly one of --tls-subject-dn, --tls-san-dns/,
        'all',
      ],
      [
        [
          ...base,
          '--auth-method',
          'tls_client_auth',
          '--tls-san-dns',
          'a.example',
          '--tls-san-ip',
          '10.0.0.1',
        ],
        2,
        /give one certificate subject option, not several \(--tls-san-dns, --tls-san-ip\)/,
        'all',
      ],
      [
        [...base, '--auth-method', 'tls_client_auth', '--tls-san-ip', '10.0.0.300'],
        1,
        /--tls-san-ip must be an IPv4 or IPv6 address/,
        'all',
      ],
      [
        [...base, '--auth-method', 'tls_client_auth', '--tls-subject-dn', 'device'],
        1,
        /--tls-subject-dn must be a distinguished name/,
        'all',
      ],
      [
        [...base, '--auth-method', 'tls_client_auth', '--tls-san-email', 'nobody'],
        1,
        /--tls-san-email must be an email address/,
        'all',
      ],
      [
        [...base, '--auth-method', 'none', '--tls-san-dns', 'a.example'],
        1,
        /--tls-san-dns is only for --auth-method tls_client_auth/,
      ],
      [
        [...base, '--auth-method', 'none', '--scope', 'pa.read pa.admin'],
        1,
        /--scope: unknown scope "pa\.admin" \(allowed: pa\.read, pa\.write, offline_access, openid\)/,
      ],
      [['list', 'extra'], 2, /unexpected argument "extra"/],
      [['list', '--yaml'], 2, /--yaml/],
      [['remove'], 2, /expected one argument \(CLIENT_ID\), got 0/],
      [['remove', 'a', 'b'], 2, /expected one argument \(CLIENT_ID\), got 2/],
      [['remove', 'cli_unknown'], 1, /there is no client cli_unknown \(see mcp-pa clients list\)/],
      [['rotate-secret'], 2, /expected one argument \(CLIENT_ID\), got 0/],
    ];
    for (const [args, code, message, config] of cases) {
      const r = await run(args, config);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.err, args.join(' ')).toMatch(message);
      expect(r.err.includes('usage:'), args.join(' ')).toBe(code === 2);
      expect(r.out, args.join(' ')).toBe('');
    }
    expect(await clientCount()).toBe(before);
    expect((await run(['--help'])).out).toMatch(/mcp-pa clients add --name NAME/);
  });
});

describe('a client added with addClient on a running server (PGlite)', () => {
  let fx: OAuthFixture;
  beforeAll(async () => {
    fx = await startOAuthFixture();
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('the server accepts the stored metadata of every kind of client the command makes', async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const inputs = [
      {
        name: 'Native',
        redirectUris: ['http://127.0.0.1/cb', 'com.example.native:/cb'],
        authMethod: 'none' as const,
        scope: 'pa.read',
      },
      {
        name: 'Keys',
        redirectUris: ['https://keys.example/cb'],
        authMethod: 'private_key_jwt' as const,
        jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', use: 'sig' }] },
      },
      {
        name: 'Keys by URI',
        redirectUris: ['https://keys.example/cb'],
        authMethod: 'private_key_jwt' as const,
        jwksUri: 'https://keys.example/jwks.json',
      },
    ];
    for (const input of inputs) {
      const added = await addClient(fx.store, input);
      const { challenge } = await pkcePair();
      const redirect = input.redirectUris[0] as string;
      const az = new URL(`${fx.origin}/oauth/authorize`);
      az.search = new URLSearchParams({
        response_type: 'code',
        client_id: added.clientId,
        // Native apps' loopback redirects match on any port.
        redirect_uri: redirect.startsWith('http://127.0.0.1/') ? 'http://127.0.0.1:50123/cb' : redirect,
        scope: input.scope ?? 'pa.read pa.write',
        state: 'S',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        resource: fx.resource,
      }).toString();
      const { res, url } = await fx.browser().follow(az.href, fx.origin);
      // The sign-in page of the interaction, not an error page about the client.
      expect(url, `${input.name}: ${res.text.slice(0, 600)}`).toMatch(/\/oauth\/interaction\//);
      expect(res.status, input.name).toBe(200);
    }
  });

  it('completes the code flow with its client secret (client_secret_basic); removing it revokes its token', async () => {
    const redirect = 'https://app.example/callback';
    const added = await addClient(
      fx.store,
      {
        name: 'Operator web app',
        redirectUris: [redirect],
        authMethod: 'client_secret_basic',
      },
      // The fixture's configuration: the defaults.
      { allowedAuthMethods: ['none', 'client_secret_basic', 'private_key_jwt'] },
    );
    const secret = added.clientSecret as string;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const user = await fx.addUser();
    const { verifier, challenge } = await pkcePair();
    const az = new URL(`${fx.origin}/oauth/authorize`);
    az.search = new URLSearchParams({
      response_type: 'code',
      client_id: added.clientId,
      redirect_uri: redirect,
      scope: 'pa.read pa.write',
      state: 'S1',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: fx.resource,
    }).toString();
    const done = await fx.browser().authorize(az.href, fx.origin, user);
    expect(String(done.location), done.res.text.slice(0, 800)).toMatch(/^https:\/\/app\.example\/callback\?/);
    const code = new URL(done.location as string).searchParams.get('code') as string;

    const tokenRequest = (password: string) =>
      fx.fetch(`${fx.origin}/oauth/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${added.clientId}:${password}`).toString('base64')}`,
        },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: redirect,
          code_verifier: verifier,
        }).toString(),
      });
    // A wrong secret is refused (and does not use the code up).
    const wrong = await tokenRequest(`${secret.slice(0, -2)}xx`);
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as Json)['error']).toBe('invalid_client');

    const ok = await tokenRequest(secret);
    const tokens = (await ok.json()) as Json;
    expect(ok.status, JSON.stringify(tokens)).toBe(200);
    const accessToken = String(tokens['access_token']);

    const mcp = (): Promise<Response> =>
      fx.fetch(fx.resource, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${accessToken}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 't', version: '1' },
          },
        }),
      });
    expect((await mcp()).status).toBe(200);

    expect(await removeClient(fx.store, added.clientId)).toMatchObject({ grants: 1 });
    await new Promise((r) => setTimeout(r, 1_100));
    const after = await mcp();
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('revoked');
  });
});
