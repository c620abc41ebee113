/**
 * docs/api.md, the API reference, held to the server it documents:
 * 1. it is exactly what src/mcp/reference.ts generates from a real server (so the listed schemas and the example
 *    results are the server's own), and generating twice gives the same text;
 * 2. every tool, resource, template and prompt that the built `mcp-pa` lists over stdio has its section, with its
 *    arguments and an example, and the page documents nothing the server does not list;
 * 3. each example's result is what the tool's output schema allows, and only the examples meant to fail failed;
 * 4. the hand-written HTTP part matches a running `mcp-pa serve`: every endpoint of its index answers, every endpoint
 *    the server advertises (metadata documents, 401 challenge, registration, authorization redirect) is in the
 *    index, the metadata examples have the members the real documents have, and /mcp behaves as described.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Prompt, Resource, ResourceTemplate, Tool } from '@modelcontextprotocol/sdk/types.js';
import { Ajv, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import * as prettier from 'prettier';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configurationReference, loadConfig } from '../../src/config/index.js';
import { apiReference, type ApiReference } from '../../src/mcp/reference.js';
import { pkcePair } from '../auth/oauth-fixture.js';
import { connectCli, ROOT, tempDir } from '../support/helpers.js';
import { headlessTokens, startServerProcess, type ServerProcess } from '../support/server-process.js';

const DOC = path.join(ROOT, 'docs/api.md');
const REGENERATE = '`npm run build && node scripts/api-reference.mjs`';

type Json = Record<string, unknown>;

const options = { maxUploadBytes: loadConfig({ env: {} }).config.documents.max_file_size_bytes };

async function formatted(markdown: string): Promise<string> {
  return prettier.format(markdown, { ...(await prettier.resolveConfig(DOC)), filepath: DOC });
}

/** Where two texts first differ, by line, or undefined when they are equal. */
function firstDifference(expected: string, actual: string): string | undefined {
  if (expected === actual) return undefined;
  const a = expected.split('\n');
  const b = actual.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      return `line ${i + 1}:\n  generated: ${JSON.stringify(a[i] ?? '(end of text)')}\n  docs/api.md: ${JSON.stringify(b[i] ?? '(end of file)')}`;
    }
  }
  return 'the texts differ';
}

/** The lines of a section: from its heading to the next heading of the same or a higher level. */
function section(doc: string, heading: string): string {
  const lines = doc.split('\n');
  const start = lines.indexOf(heading);
  if (start === -1) return '';
  const level = /^#+/.exec(heading)?.[0].length ?? 2;
  let end = start + 1;
  let fence = false;
  for (; end < lines.length; end++) {
    const line = lines[end] as string;
    if (/^\s*(```|~~~)/.test(line)) fence = !fence;
    if (fence) continue;
    const m = /^(#+) /.exec(line);
    if (m && (m[1] as string).length <= level) break;
  }
  return lines.slice(start, end).join('\n');
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A table row starting with these two code cells (Prettier pads cells with spaces). */
function tableRow(first: string, second: string): RegExp {
  return new RegExp(`^\\| \`${escape(first)}\` +\\| \`${escape(second)}\` +\\|`, 'm');
}

const doc = readFileSync(DOC, 'utf8');
let reference: ApiReference;

beforeAll(async () => {
  reference = await apiReference(options);
});

describe('docs/api.md is generated from the server', () => {
  it(`is exactly what the server generates (regenerate with ${REGENERATE})`, async () => {
    const difference = firstDifference(await formatted(reference.markdown), doc);
    expect(
      difference,
      `docs/api.md is out of date: run ${REGENERATE}. First difference at ${difference}`,
    ).toBe(undefined);
  });

  it('comes out the same on every run (fixed clock, ids and cursors as placeholders)', async () => {
    const again = await apiReference(options);
    expect(firstDifference(reference.markdown, again.markdown)).toBe(undefined);
    expect(reference.markdown).not.toMatch(/\b(prj|tsk|evt|doc|not)_[0-9a-z]{20,}\b/);
  });
});

describe('everything the built server lists is documented', () => {
  let client: Client;
  const dir = tempDir('mcp-pa-api-doc-');
  let tools: Tool[];
  let resources: Resource[];
  let templates: ResourceTemplate[];
  let prompts: Prompt[];

  beforeAll(async () => {
    ({ client } = await connectCli({ HOME: dir.dir, MCP_DATA_DIR: dir.dir }));
    tools = (await client.listTools()).tools;
    resources = (await client.listResources()).resources;
    templates = (await client.listResourceTemplates()).resourceTemplates;
    prompts = (await client.listPrompts()).prompts;
  });
  afterAll(async () => {
    await client?.close();
    dir.cleanup();
  });

  it('every tool has a section with its description, each argument, each result field and an example', () => {
    expect(tools.length).toBeGreaterThan(0);
    for (const tool of tools) {
      const text = section(doc, `### \`${tool.name}\``);
      expect(text, `docs/api.md has no section for the tool ${tool.name}`).not.toBe('');
      expect(text).toContain(tool.description ?? '');
      for (const arg of Object.keys(tool.inputSchema.properties ?? {})) {
        expect(text, `${tool.name}: argument ${arg}`).toContain(`- \`${arg}\` (`);
      }
      for (const field of Object.keys((tool.outputSchema?.properties as Json | undefined) ?? {})) {
        expect(text, `${tool.name}: result field ${field}`).toContain(`- \`${field}\` (`);
      }
      expect(text, `${tool.name} has no example`).toContain('**Example:');
    }
  });

  it('documents no tool the server does not have', () => {
    const documented = [...section(doc, '## Tools').matchAll(/^### `([^`]+)`$/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(tools.map((t) => t.name).sort());
  });

  it('every resource, template and prompt is documented, with an example of each template and prompt', () => {
    const resourcesPart = section(doc, '## Resources');
    for (const r of resources) expect(resourcesPart, r.uri).toMatch(tableRow(r.uri, r.name));
    expect(resourcesPart).toContain('**Example:');
    const templatesPart = section(doc, '## Resource templates');
    for (const t of templates) {
      expect(templatesPart, t.uriTemplate).toMatch(tableRow(t.uriTemplate, t.name));
      const pattern = new RegExp(
        `^${t.uriTemplate.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`,
      );
      expect(
        reference.resourceExamples.some((e) => !e.expectError && pattern.test(e.uri)),
        `an example reading ${t.uriTemplate}`,
      ).toBe(true);
    }
    const promptsPart = section(doc, '## Prompts');
    const documented = [...promptsPart.matchAll(/^### `([^`]+)`$/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(prompts.map((p) => p.name).sort());
    for (const p of prompts) {
      const text = section(doc, `### \`${p.name}\``);
      for (const a of p.arguments ?? []) expect(text, `${p.name}: ${a.name}`).toContain(`- \`${a.name}\` (`);
      expect(text, `${p.name} has no example`).toContain('**Example:');
    }
  });

  it('the generator saw the same lists as the built server', () => {
    expect(reference.tools.map((t) => t.name)).toEqual(tools.map((t) => t.name));
    expect(reference.tools.map((t) => t.inputSchema)).toEqual(tools.map((t) => t.inputSchema));
    expect(reference.tools.map((t) => t.outputSchema)).toEqual(tools.map((t) => t.outputSchema));
    expect(reference.resources).toEqual(resources);
    expect(reference.resourceTemplates).toEqual(templates);
    expect(reference.prompts).toEqual(prompts);
  });
});

describe('the examples are real results', () => {
  const ajv07 = new Ajv({ strict: false, allErrors: true });
  const ajv2020 = new Ajv2020({ strict: false, allErrors: true });
  const validators = new Map<string, ValidateFunction>();
  const validatorFor = (tool: Tool): ValidateFunction => {
    let v = validators.get(tool.name);
    if (v) return v;
    const schema = tool.outputSchema as Json;
    const is2020 = typeof schema['$schema'] === 'string' && schema['$schema'].includes('2020-12');
    v = (is2020 ? ajv2020 : ajv07).compile(schema);
    validators.set(tool.name, v);
    return v;
  };

  it('every successful tool example fits the output schema, with the same object as text in content[0]', () => {
    const ok = reference.toolExamples.filter((e) => !e.expectError);
    expect(ok.length).toBeGreaterThan(20);
    for (const example of ok) {
      const label = `${example.tool}: ${example.caption}`;
      expect(example.error, label).toBe(undefined);
      const result = example.result;
      expect(result?.isError, label).not.toBe(true);
      const tool = reference.tools.find((t) => t.name === example.tool) as Tool;
      const validate = validatorFor(tool);
      expect(validate(result?.structuredContent), `${label}: ${ajv07.errorsText(validate.errors)}`).toBe(
        true,
      );
      const first = result?.content[0];
      expect(first?.type, label).toBe('text');
      expect(JSON.parse(first?.type === 'text' ? first.text : 'null'), label).toEqual(
        result?.structuredContent,
      );
    }
  });

  it('the examples meant to fail are errors naming what is wrong', () => {
    const failing = reference.toolExamples.filter((e) => e.expectError);
    expect(failing.length).toBeGreaterThan(0);
    for (const example of failing) {
      expect(example.result?.isError, `${example.tool}: ${example.caption}`).toBe(true);
      const block = example.result?.content[0];
      expect(block?.type === 'text' ? block.text : '').toMatch(/^(Error \(\w+\): |MCP error -32602: )/);
    }
  });

  it('resource, prompt and completion examples succeeded unless meant to fail', () => {
    for (const e of reference.resourceExamples) {
      if (e.expectError) {
        expect(e.error?.code, e.uri).toBeTypeOf('number');
      } else {
        expect(e.error, e.uri).toBe(undefined);
        const content = e.result?.contents[0] as { text?: string; mimeType?: string } | undefined;
        expect(content?.mimeType).toBe('application/json');
        expect(() => JSON.parse(content?.text ?? '') as unknown, e.uri).not.toThrow();
      }
    }
    for (const e of reference.promptExamples) {
      expect(e.error, e.name).toBe(undefined);
      expect(e.result?.messages.length, e.name).toBeGreaterThan(0);
    }
    for (const e of reference.completionExamples) expect(e.values.length, e.caption).toBeGreaterThan(0);
  });
});

// ------------------------------------------------------------------------------------------------ HTTP mode

interface Endpoint {
  readonly method: string;
  readonly path: string;
}

/** The rows of the "Endpoint index" table: `METHOD /path`, with <placeholders> for path segments. */
function endpointIndex(markdown: string): Endpoint[] {
  const table = section(markdown, '### Endpoint index');
  return [...table.matchAll(/^\| `(GET|POST|PUT|DELETE|OPTIONS|HEAD) (\/[^`\s]*)` +\|/gm)].map((m) => ({
    method: m[1] as string,
    path: m[2] as string,
  }));
}

function matches(documented: string, actual: string): boolean {
  const pattern = documented.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/<[^>]+>/g, '[^/]+');
  return new RegExp(`^${pattern}$`).test(actual);
}

/** The first ```json block of a section, parsed. */
function exampleJson(markdown: string, heading: string): Json {
  const m = /```json\n([\s\S]*?)\n```/.exec(section(markdown, heading));
  if (!m) throw new Error(`no JSON example under ${heading}`);
  return JSON.parse(m[1] as string) as Json;
}

/** Every string in a JSON value (nested objects and arrays included). */
function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(strings);
  return [];
}

describe('the HTTP endpoints, against a running mcp-pa serve', () => {
  const index = endpointIndex(doc);
  const metricsToken = 'metrics-token-for-the-api-reference-test-0123456789';
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServerProcess({
      users: ['alice'],
      usersInProcess: true,
      config: { metrics: { token: metricsToken } },
    });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
  });

  /** A registered public client and an authorization in progress (its interaction uid). */
  async function clientAndInteraction(): Promise<{ clientId: string; registration: Json; uid: string }> {
    const res = await server.fetch(`${server.origin}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1/cb'], token_endpoint_auth_method: 'none' }),
    });
    expect(res.status).toBe(201);
    const registration = (await res.json()) as Json;
    const clientId = String(registration['client_id']);
    const { challenge } = await pkcePair();
    const az = new URL(`${server.origin}/oauth/authorize`);
    az.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: 'http://127.0.0.1/cb',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state: 'api-reference',
    }).toString();
    const started = await server.fetch(az.href, { redirect: 'manual' });
    expect(started.status).toBe(303);
    const location = started.headers.get('location') ?? '';
    expect(location).toMatch(/^\/oauth\/interaction\/[^/]+$/);
    return { clientId, registration, uid: location.split('/').pop() as string };
  }

  it('the index lists the MCP, health, metadata, OAuth and account endpoints', () => {
    expect(index.length).toBeGreaterThan(20);
    for (const path of ['/mcp', '/healthz', '/readyz', '/oauth/token', '/oauth/register', '/account/apps']) {
      expect(
        index.some((e) => e.path === path),
        path,
      ).toBe(true);
    }
  });

  it('every endpoint of the index answers (nothing documented is a 404)', async () => {
    const { clientId, uid } = await clientAndInteraction();
    for (const e of index) {
      const concrete = e.path.replace('<client_id>', clientId).replace('<uid>', uid);
      expect(concrete, `${e.method} ${e.path}: a placeholder the test does not know`).not.toMatch(/[<>]/);
      const headers: Record<string, string> = {};
      if (e.path === '/metrics') headers['authorization'] = `Bearer ${metricsToken}`;
      const res = await server.fetch(`${server.origin}${concrete}`, {
        method: e.method,
        redirect: 'manual',
        headers,
        ...(e.method === 'POST' || e.method === 'PUT' ? { body: '' } : {}),
      });
      await res.arrayBuffer().catch(() => undefined);
      expect(res.status, `${e.method} ${e.path} answered ${res.status}`).not.toBe(404);
      expect(res.status, `${e.method} ${e.path} answered ${res.status}`).toBeLessThan(500);
    }
    // What the page says is not offered is not there: userinfo, RP-initiated logout, POST to the authorization endpoint.
    for (const [method, absent] of [
      ['GET', '/oauth/userinfo'],
      ['GET', '/oauth/logout'],
      ['POST', '/oauth/authorize'],
    ] as const) {
      const res = await server.fetch(`${server.origin}${absent}`, { method });
      await res.arrayBuffer();
      expect(res.status, `${method} ${absent}`).toBe(404);
    }
  });

  it('every endpoint the server advertises is in the index', async () => {
    const advertised: string[] = [];
    const documents: Record<string, Json> = {};
    for (const p of [
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/oauth-authorization-server',
      '/.well-known/openid-configuration',
    ]) {
      const res = await server.fetch(`${server.origin}${p}`);
      expect(res.status, p).toBe(200);
      documents[p] = (await res.json()) as Json;
      advertised.push(...strings(documents[p]));
    }
    expect(documents['/.well-known/openid-configuration']).toEqual(
      documents['/.well-known/oauth-authorization-server'],
    );
    expect(documents['/.well-known/oauth-authorization-server']).not.toHaveProperty('userinfo_endpoint');
    expect(documents['/.well-known/oauth-authorization-server']).not.toHaveProperty('end_session_endpoint');
    const challenge = await server.fetch(`${server.origin}/mcp`, { method: 'POST' });
    await challenge.arrayBuffer();
    expect(challenge.status).toBe(401);
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(
      challenge.headers.get('www-authenticate') ?? '',
    )?.[1];
    expect(metadataUrl).toBeDefined();
    advertised.push(metadataUrl as string);
    const { registration, uid } = await clientAndInteraction();
    advertised.push(...strings(registration), `${server.origin}/oauth/interaction/${uid}`);

    const paths = new Set(
      advertised
        .filter((s) => s.startsWith(`${server.origin}/`))
        .map((s) => new URL(s).pathname)
        .filter((p) => p !== '/'),
    );
    expect(paths.size).toBeGreaterThan(8);
    for (const p of paths) {
      expect(
        index.some((e) => matches(e.path, p)),
        `the server advertises ${p}, which the endpoint index of docs/api.md does not list`,
      ).toBe(true);
    }
  });

  it('the metadata examples have the members the real documents have', async () => {
    for (const [heading, p] of [
      ['### Protected resource metadata', '/.well-known/oauth-protected-resource/mcp'],
      ['### Authorization server metadata', '/.well-known/oauth-authorization-server'],
    ] as const) {
      const res = await server.fetch(`${server.origin}${p}`);
      const real = (await res.json()) as Json;
      const example = exampleJson(doc, heading);
      expect(Object.keys(example).sort(), heading).toEqual(Object.keys(real).sort());
      // The same values, with the server's origin written as https://HOST.
      const hosted = JSON.parse(JSON.stringify(real).split(server.origin).join('https://HOST')) as Json;
      expect(example, heading).toEqual(hosted);
    }
  });

  it('every setting the HTTP part names is a configuration key', () => {
    const keys = new Set(
      [...configurationReference().matchAll(/^\| `([a-z_.]+)` \|/gm)].map((m) => m[1] as string),
    );
    const named = [
      ...section(doc, '## HTTP endpoints').matchAll(
        /`((?:server|authentication|features|security|metrics|database|documents|embeddings|logging|assistant)\.[a-z_]+)`/g,
      ),
    ].map((m) => m[1] as string);
    expect(named.length).toBeGreaterThan(10);
    for (const key of named) expect(keys.has(key), `${key} is not a configuration key`).toBe(true);
  });

  it('/mcp: the 401 challenge, a session opened by initialize and ended by DELETE', async () => {
    const refused = await server.fetch(`${server.origin}/mcp`, { method: 'POST' });
    await refused.arrayBuffer();
    expect(refused.headers.get('www-authenticate')).toBe(
      `Bearer resource_metadata="${server.origin}/.well-known/oauth-protected-resource/mcp", scope="pa.read pa.write"`,
    );
    const user = server.users.get('alice') as { username: string; password: string };
    const tokens = await headlessTokens({
      origin: server.origin,
      resource: server.resource,
      ca: server.ca,
      user,
    });
    const headers = {
      authorization: `Bearer ${tokens.accessToken}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    const init = await server.fetch(`${server.origin}/mcp`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'example', version: '1' },
        },
      }),
    });
    expect(init.status).toBe(200);
    expect(init.headers.get('content-type')).toBe('text/event-stream');
    expect(init.headers.get('cache-control')).toBe('no-store, no-transform');
    expect(await init.text()).toMatch(/^event: message\ndata: \{"result":\{"protocolVersion":"2025-11-25"/);
    const session = init.headers.get('mcp-session-id') ?? '';
    expect(session).not.toBe('');
    const withSession = { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' };
    const initialized = await server.fetch(`${server.origin}/mcp`, {
      method: 'POST',
      headers: withSession,
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    await initialized.arrayBuffer();
    expect(initialized.status).toBe(202);
    const ended = await server.fetch(`${server.origin}/mcp`, { method: 'DELETE', headers: withSession });
    await ended.arrayBuffer();
    expect(ended.status).toBe(200);
    const gone = await server.fetch(`${server.origin}/mcp`, {
      method: 'POST',
      headers: withSession,
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    });
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { error: { code: number } }).error.code).toBe(-32001);
  });
});
