/**
 * A real stdio-to-HTTP bridge against HTTP mode: `mcp-remote` (the proxy many desktop MCP clients use for remote
 * servers) runs as a child process pointed at the production server (in process, HTTPS on 127.0.0.1 with a test CA
 * it trusts through NODE_EXTRA_CA_CERTS). It discovers the authorization server, registers itself dynamically, starts
 * an authorization-code flow with PKCE and a resource indicator, and "opens a browser" — for real: its `open`
 * package runs the bundled `xdg-open`, which on a machine without a desktop hands the URL to $BROWSER; here $BROWSER
 * is a script writing the URL to a file. The test then signs the user in and consents through the real pages and
 * delivers the redirect to mcp-remote's loopback callback, as the browser would. The MCP SDK's client then speaks
 * MCP to mcp-remote over stdio: tools are listed and called, and the data is found in the server's database for the
 * signed-in user. A second mcp-remote run reuses the stored tokens without a browser.
 */
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { decodeJwt } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../support/helpers.js';
import { startOAuthFixture, type OAuthFixture, type TestUser } from '../auth/oauth-fixture.js';

const MCP_REMOTE = path.join(ROOT, 'node_modules/mcp-remote/dist/proxy.js');
const URL_WAIT_MS = 30_000;

/** A port free on 127.0.0.1 right now (mcp-remote binds its callback server there). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor<T>(
  what: string,
  probe: () => T | undefined,
  ms: number,
  stderr: () => string,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not happen within ${ms} ms; mcp-remote said:\n${stderr()}`);
}

function structured(result: unknown): Record<string, unknown> {
  const r = result as { isError?: boolean; structuredContent?: Record<string, unknown>; content?: unknown };
  expect(r.isError ?? false, JSON.stringify(r.content)).toBe(false);
  expect(r.structuredContent).toBeTypeOf('object');
  return r.structuredContent as Record<string, unknown>;
}

interface Bridge {
  readonly client: Client;
  readonly transport: StdioClientTransport;
  readonly stderr: () => string;
}

describe('mcp-remote (stdio ↔ Streamable HTTP bridge with its own OAuth) against HTTP mode', () => {
  let fx: OAuthFixture;
  let alice: TestUser;
  let work: { dir: string; cleanup: () => void };
  let configDir: string;
  let urlFile: string;
  let caFile: string;
  let browserScript: string;
  let callbackPort: number;
  const bridges: Bridge[] = [];
  const timings: Record<string, number> = {};
  const projectName = `Via mcp-remote ${Math.random().toString(36).slice(2, 8)}`;
  let projectId = '';

  /** Starts mcp-remote under the MCP SDK's stdio client transport; connect() is left to the caller. */
  function bridge(): { client: Client; transport: StdioClientTransport; stderr: () => string } {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [MCP_REMOTE, fx.resource, String(callbackPort)],
      // Only what mcp-remote needs: no DISPLAY or desktop session, so xdg-open falls back to $BROWSER.
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: work.dir,
        MCP_REMOTE_CONFIG_DIR: configDir,
        NODE_EXTRA_CA_CERTS: caFile,
        BROWSER: browserScript,
      },
      stderr: 'pipe',
    });
    let err = '';
    transport.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    const client = new Client({ name: 'mcp-remote-test', version: '1.0.0' });
    const b = { client, transport, stderr: () => err };
    bridges.push(b);
    return b;
  }

  const openedUrls = (): string[] =>
    existsSync(urlFile)
      ? readFileSync(urlFile, 'utf8')
          .split('\n')
          .filter((l) => l.length > 0)
      : [];

  /** mcp-remote's stored state (MCP_REMOTE_CONFIG_DIR/mcp-remote-v1/<hash>_<name>). */
  const stored = (name: string): Record<string, unknown> | undefined => {
    const dir = path.join(configDir, 'mcp-remote-v1');
    if (!existsSync(dir)) return undefined;
    const file = readdirSync(dir).find((f) => f.endsWith(`_${name}`));
    return file
      ? (JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Record<string, unknown>)
      : undefined;
  };

  beforeAll(async () => {
    const fixtureStarted = Date.now();
    fx = await startOAuthFixture();
    timings['fixture start'] = Date.now() - fixtureStarted;
    alice = await fx.addUser();
    work = tempDir('mcp-pa-mcp-remote-');
    configDir = path.join(work.dir, 'mcp-auth');
    urlFile = path.join(work.dir, 'opened-urls.txt');
    caFile = path.join(work.dir, 'ca.pem');
    writeFileSync(caFile, fx.ca.cert);
    browserScript = path.join(work.dir, 'fake-browser');
    // The "browser": records the URL it was asked to open and succeeds, as a browser launcher does.
    writeFileSync(browserScript, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${urlFile}'\n`);
    chmodSync(browserScript, 0o755);
    callbackPort = await freePort();
  }, 120_000);

  afterAll(async () => {
    for (const b of bridges) {
      await b.client.close().catch(() => undefined);
      const pid = b.transport.pid;
      if (pid !== null) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // exited
        }
      }
    }
    // Every token mcp-remote holds is a secret the server must never have logged.
    const tokens = stored('tokens.json');
    fx?.secrets.add('access_token', tokens?.['access_token']);
    fx?.secrets.add('refresh_token', tokens?.['refresh_token']);
    fx?.secrets.add('client_secret', stored('client_info.json')?.['client_secret']);
    const closing = Date.now();
    await fx?.close();
    timings['fixture close'] = Date.now() - closing;
    work?.cleanup();
    console.info(`mcp-remote timings (ms): ${JSON.stringify(timings)}`);
  }, 120_000);

  it('signs in through a headless browser (DCR, PKCE, resource) and bridges MCP over stdio', async () => {
    const started = Date.now();
    const { client, transport, stderr } = bridge();
    // The SDK sends initialize at once; mcp-remote reads it after its OAuth flow, so this waits for the sign-in.
    const connecting = client.connect(transport, { timeout: 60_000 });
    connecting.catch(() => undefined);

    const opened = await waitFor(
      'mcp-remote opening the authorization URL',
      () => openedUrls()[0],
      URL_WAIT_MS,
      stderr,
    );
    timings['to browser'] = Date.now() - started;
    const az = new URL(opened);
    expect(`${az.origin}${az.pathname}`).toBe(`${fx.origin}/oauth/authorize`);
    expect(az.searchParams.get('response_type')).toBe('code');
    expect(az.searchParams.get('code_challenge_method')).toBe('S256');
    expect(az.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(az.searchParams.get('resource')).toBe(fx.resource);
    expect(az.searchParams.get('state')).toBeTruthy();
    const redirectUri = az.searchParams.get('redirect_uri') ?? '';
    expect(new URL(redirectUri).port).toBe(String(callbackPort));
    expect(['localhost', '127.0.0.1']).toContain(new URL(redirectUri).hostname);
    // It printed the same URL on stderr for a user without a browser (encoded slightly differently: + for spaces).
    const printed = /Please authorize this client by visiting:\s+(\S+)/.exec(stderr())?.[1];
    expect(printed).toBeDefined();
    const printedUrl = new URL(printed as string);
    expect(`${printedUrl.origin}${printedUrl.pathname}`).toBe(`${az.origin}${az.pathname}`);
    expect([...printedUrl.searchParams].sort()).toEqual([...az.searchParams].sort());

    // The client it registered (RFC 7591, a dcr_ id from the server) is the one in the URL, with this redirect URI.
    const clientInfo = stored('client_info.json');
    expect(clientInfo?.['client_id']).toBe(az.searchParams.get('client_id'));
    expect(clientInfo?.['redirect_uris']).toEqual([redirectUri]);
    expect(String(clientInfo?.['client_id'])).toMatch(/^dcr_/);

    // Its PKCE verifier (kept in a file until the code arrives) is a secret the server must not log either.
    const stateDir = path.join(configDir, 'mcp-remote-v1');
    const verifierFiles = readdirSync(stateDir).filter((n) => n.includes('_code_verifier_'));
    expect(verifierFiles.length).toBeGreaterThan(0);
    for (const f of verifierFiles)
      fx.secrets.add('code_verifier', readFileSync(path.join(stateDir, f), 'utf8').trim());

    // The user signs in and consents; the browser follows the redirect to mcp-remote's callback.
    const done = await fx.browser().authorize(opened, fx.origin, alice, 'allow');
    expect(done.location, `stopped at HTTP ${done.res.status}`).toBeTruthy();
    const back = new URL(done.location as string);
    expect(`${back.origin}${back.pathname}`).toBe(new URL(redirectUri).href);
    expect(back.searchParams.get('state')).toBe(az.searchParams.get('state'));
    expect(back.searchParams.get('iss')).toBe(fx.issuer);
    const callback = await fetch(back, { signal: AbortSignal.timeout(10_000) });
    expect(callback.status).toBe(200);
    expect(await callback.text()).toContain('Authorization successful');

    await connecting;
    timings['to initialized'] = Date.now() - started;
    expect(client.getServerVersion()?.name).toBeTruthy();

    // The tokens it obtained: a JWT access token for the MCP resource, about Alice, for its client; a refresh token.
    const tokens = stored('tokens.json');
    const accessToken = String(tokens?.['access_token']);
    fx.secrets.add('access_token', accessToken);
    fx.secrets.add('refresh_token', tokens?.['refresh_token']);
    expect(String(tokens?.['token_type']).toLowerCase()).toBe('bearer');
    expect(tokens?.['refresh_token']).toBeTruthy();
    const claims = decodeJwt(accessToken);
    expect(claims.aud).toBe(fx.resource);
    expect(claims.sub).toBe(alice.id);
    expect(claims['client_id']).toBe(clientInfo?.['client_id']);

    // MCP through the bridge.
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(
      expect.arrayContaining(['create_project', 'get_project', 'list_projects', 'create_todo']),
    );
    const created = structured(
      await client.callTool({ name: 'create_project', arguments: { name: projectName, priority: 'low' } }),
    );
    const project = created['project'] as { id: string; name: string; priority: string };
    expect(project.name).toBe(projectName);
    projectId = project.id;
    const todo = structured(
      await client.callTool({
        name: 'create_todo',
        arguments: { title: 'Bridge task', project_id: projectId },
      }),
    );
    const todoId = (todo['todo'] as { id: string }).id;
    const got = structured(
      await client.callTool({ name: 'get_project', arguments: { project_id: projectId } }),
    );
    expect((got['tasks'] as { id: string }[]).map((t) => t.id)).toContain(todoId);

    // In the server's database, for Alice's tenant (the token's subject).
    const row = await fx.store.getItem(alice.id, projectId);
    expect(row?.kind).toBe('project');
    expect(row?.title).toBe(projectName);
    expect((await fx.store.getItem(alice.id, todoId))?.project_id).toBe(projectId);
    timings['first session total'] = Date.now() - started;
  }, 120_000);

  it('starts again from its stored tokens without opening a browser', async () => {
    expect(projectId, 'the first test connected').not.toBe('');
    const before = openedUrls().length;
    const started = Date.now();
    const { client, transport } = bridge();
    await client.connect(transport, { timeout: 60_000 });
    timings['restart to initialized'] = Date.now() - started;
    const list = structured(await client.callTool({ name: 'list_projects', arguments: {} }));
    expect((list['items'] as { id: string }[]).map((p) => p.id)).toContain(projectId);
    expect(openedUrls()).toHaveLength(before);
    await client.close();
  }, 120_000);

  it('refreshes (rotating the refresh token) when the server refuses its stored access token', async () => {
    expect(projectId, 'the first test connected').not.toBe('');
    const dir = path.join(configDir, 'mcp-remote-v1');
    const file = readdirSync(dir).find((f) => f.endsWith('_tokens.json'));
    expect(file).toBeDefined();
    const tokensPath = path.join(dir, file as string);
    const before = JSON.parse(readFileSync(tokensPath, 'utf8')) as Record<string, unknown>;
    const oldAccess = String(before['access_token']);
    const oldRefresh = String(before['refresh_token']);
    // A spoiled signature: /mcp answers 401 invalid_token, and mcp-remote must use its refresh token.
    writeFileSync(
      tokensPath,
      JSON.stringify({ ...before, access_token: `${oldAccess.slice(0, -8)}AAAAAAAA` }),
    );
    const opened = openedUrls().length;
    const started = Date.now();
    const { client, transport, stderr } = bridge();
    await client.connect(transport, { timeout: 60_000 });
    timings['refresh to initialized'] = Date.now() - started;
    const list = structured(await client.callTool({ name: 'list_projects', arguments: {} }));
    expect(
      (list['items'] as { id: string }[]).map((p) => p.id),
      stderr(),
    ).toContain(projectId);
    expect(openedUrls(), 'no new sign-in').toHaveLength(opened);

    const after = stored('tokens.json');
    fx.secrets.add('access_token', after?.['access_token']);
    fx.secrets.add('refresh_token', after?.['refresh_token']);
    expect(after?.['refresh_token']).toBeTruthy();
    expect(after?.['refresh_token'], 'the refresh token was rotated').not.toBe(oldRefresh);
    expect(after?.['access_token']).not.toBe(oldAccess);
    expect(decodeJwt(String(after?.['access_token'])).sub).toBe(alice.id);
    await client.close();
  }, 120_000);
});
