/**
 * HTTP mode trusting an external authorization server (authentication.issuer): a second, separately started
 * oidc-provider on 127.0.0.1 (real HTTPS, a certificate from the test CA) issues tokens with the
 * client_credentials grant. mcp-pa discovers it, publishes it in its protected-resource metadata, serves no
 * authorization-server endpoints of its own, and accepts at /mcp exactly the tokens that issuer made for its
 * resource (JWTs checked against the issuer's JWKS, opaque ones by introspection): not those for another audience,
 * not those from another issuer or signed by another key, not expired ones.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importJWK,
  SignJWT,
  type JWK,
} from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import Provider, { errors } from 'oidc-provider';
import { testCa } from '../servers/http-app-fixture.js';
import { httpsFetch } from '../support/https.js';
import { startOAuthFixture, type OAuthFixture } from './oauth-fixture.js';

const CLIENT_ID = 'ext-service';
const CLIENT_SECRET = randomBytes(24).toString('base64url');
const INTROSPECTOR_ID = 'mcp-pa-introspector';
const INTROSPECTOR_SECRET = randomBytes(24).toString('base64url');
const OTHER_AUDIENCE = 'https://other.example/api';

/** A plain oidc-provider acting as an issuer of access tokens (client_credentials) for any https resource. */
interface ExternalIssuer {
  readonly issuer: string;
  /** The issuer's private signing key (to forge tokens the issuer could have made, e.g. expired ones). */
  readonly signingKey: JWK;
  /** Access token for `resource` by the client_credentials grant. */
  token(resource: string, format?: 'jwt' | 'opaque'): Promise<string>;
  fetch: typeof fetch;
  close(): Promise<void>;
}

async function signingJwk(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: randomBytes(8).toString('base64url'), alg: 'ES256', use: 'sig' };
}

async function startExternalIssuer(fetchImpl: typeof fetch): Promise<ExternalIssuer> {
  const ca = await testCa();
  const cert = await ca.issue();
  // The port must be known before the provider is made (its issuer): listen first, hand requests over after.
  const app: { handler?: (req: IncomingMessage, res: ServerResponse) => void } = {};
  const server: Server = createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    if (app.handler) app.handler(req, res);
    else {
      res.statusCode = 503;
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `https://127.0.0.1:${port}`;
  const key = await signingJwk();
  // Which format the next token gets (the resource server info is asked for at each token request).
  let nextFormat: 'jwt' | 'opaque' = 'jwt';
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'pa.read pa.write',
      },
      {
        client_id: INTROSPECTOR_ID,
        client_secret: INTROSPECTOR_SECRET,
        grant_types: [],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [key] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['pa.read', 'pa.write'],
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    ttl: { ClientCredentials: () => 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Only the resource server's own client may introspect.
      introspection: {
        enabled: true,
        allowedPolicy: (_ctx: unknown, client: { clientId: string }) => client.clientId === INTROSPECTOR_ID,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (!indicator.startsWith('https://')) throw new errors.InvalidTarget('https resources only');
          return {
            scope: 'pa.read pa.write',
            audience: indicator,
            accessTokenFormat: nextFormat,
            ...(nextFormat === 'jwt' ? { jwt: { sign: { alg: 'ES256' } } } : {}),
          };
        },
      },
    },
    // Client credentials tokens carry no account: the subject is the client (as in the library's JWTs), so
    // introspection answers one as well.
    extraTokenClaims: (_ctx: unknown, token: { kind: string; clientId?: string }) =>
      token.kind === 'ClientCredentials' ? { sub: token.clientId } : undefined,
  });
  app.handler = provider.callback();

  return {
    issuer,
    signingKey: key,
    fetch: fetchImpl,
    async token(resource, format = 'jwt') {
      nextFormat = format;
      try {
        const res = await fetchImpl(`${issuer}/token`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
          },
          body: new URLSearchParams({
            grant_type: 'client_credentials',
            scope: 'pa.read pa.write',
            resource,
          }).toString(),
        });
        const body = (await res.json()) as Record<string, unknown>;
        expect(res.status, JSON.stringify(body)).toBe(200);
        return String(body['access_token']);
      } finally {
        nextFormat = 'jwt';
      }
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function mcpInit(fx: OAuthFixture, token: string): Promise<Response> {
  return fx.fetch(fx.resource, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    }),
  });
}

/** The error code of a refusal's WWW-Authenticate. */
function challengeOf(res: Response): string {
  return res.headers.get('www-authenticate') ?? '';
}

async function expectRefused(fx: OAuthFixture, token: string, description: RegExp): Promise<void> {
  const res = await mcpInit(fx, token);
  const challenge = challengeOf(res);
  expect(res.status, challenge).toBe(401);
  expect(challenge).toMatch(/^Bearer /);
  expect(challenge).toContain('error="invalid_token"');
  expect(challenge).toMatch(description);
  expect(challenge).toContain(`resource_metadata="${fx.origin}/.well-known/oauth-protected-resource/mcp"`);
}

describe('an external issuer (PGlite)', () => {
  let external: ExternalIssuer;
  let third: ExternalIssuer;
  let fx: OAuthFixture;

  beforeAll(async () => {
    const ca = await testCa();
    const clientFetch = httpsFetch(ca.cert);
    external = await startExternalIssuer(clientFetch);
    third = await startExternalIssuer(clientFetch);
    fx = await startOAuthFixture({
      config: {
        authentication: {
          issuer: external.issuer,
          metadata_fetch_allow: [external.issuer],
          introspection_client_id: INTROSPECTOR_ID,
          introspection_client_secret: INTROSPECTOR_SECRET,
        },
      },
    });
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
    await external?.close();
    await third?.close();
  });

  it('publishes the external issuer in its protected-resource metadata', async () => {
    for (const path of [
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/oauth-protected-resource',
    ]) {
      const res = await fx.fetch(`${fx.origin}${path}`);
      expect(res.status, path).toBe(200);
      const prm = (await res.json()) as Record<string, unknown>;
      expect(prm['resource']).toBe(fx.resource);
      expect(prm['authorization_servers']).toEqual([external.issuer]);
      expect(prm['scopes_supported']).toEqual(['pa.read', 'pa.write']);
    }
  });

  it('serves no authorization-server endpoints or metadata of its own', async () => {
    for (const path of [
      '/.well-known/oauth-authorization-server',
      '/.well-known/openid-configuration',
      '/oauth/authorize?response_type=code&client_id=x',
      '/oauth/jwks',
      '/account/apps',
    ]) {
      const res = await fx.fetch(`${fx.origin}${path}`);
      expect(res.status, path).toBe(404);
      await res.body?.cancel();
    }
    for (const path of ['/oauth/token', '/oauth/register']) {
      const res = await fx.fetch(`${fx.origin}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials',
      });
      expect(res.status, path).toBe(404);
      await res.body?.cancel();
    }
    // Without a token, /mcp points at the metadata naming the external issuer.
    const res = await fx.fetch(fx.resource, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{}',
    });
    expect(res.status).toBe(401);
    expect(challengeOf(res)).toContain('resource_metadata=');
  });

  it("accepts the issuer's JWT for this resource: initialize and tool calls, as the token's subject", async () => {
    const token = await external.token(fx.resource);
    expect(decodeProtectedHeader(token).alg).toBe('ES256');
    const claims = decodeJwt(token);
    expect(claims.iss).toBe(external.issuer);
    expect(claims.aud).toBe(fx.resource);
    expect(claims.sub).toBe(CLIENT_ID);

    expect((await mcpInit(fx, token)).status).toBe(200);

    const client = new Client({ name: 'external-issuer-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(fx.resource), {
        fetch: fx.fetch,
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    try {
      const created = (await client.callTool({
        name: 'create_todo',
        arguments: { title: 'From the external issuer' },
      })) as { isError?: boolean; structuredContent?: Record<string, unknown>; content?: unknown };
      expect(created.isError ?? false, JSON.stringify(created.content)).toBe(false);
      const listed = (await client.callTool({ name: 'list_todos', arguments: {} })) as {
        structuredContent?: { items?: { title: string }[] };
      };
      expect(listed.structuredContent?.items?.map((t) => t.title)).toEqual(['From the external issuer']);
    } finally {
      await client.close();
    }
  });

  it('refuses a token of the same issuer made for another audience', async () => {
    const token = await external.token(OTHER_AUDIENCE);
    expect(decodeJwt(token).aud).toBe(OTHER_AUDIENCE);
    await expectRefused(fx, token, /another audience/);
  });

  it('refuses tokens of another issuer, and tokens naming the issuer but signed by another key', async () => {
    // A real third issuer's token, made for this very resource.
    const foreign = await third.token(fx.resource);
    expect(decodeJwt(foreign).aud).toBe(fx.resource);
    await expectRefused(fx, foreign, /unknown key|another issuer/);

    // Claims exactly like the issuer's, signed by the third issuer's key under the issuer's own kid.
    const forgedKey = await importJWK(third.signingKey, 'ES256');
    const forged = await new SignJWT({ scope: 'pa.read pa.write', client_id: CLIENT_ID })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: external.signingKey.kid as string })
      .setIssuer(external.issuer)
      .setAudience(fx.resource)
      .setSubject(CLIENT_ID)
      .setIssuedAt()
      .setExpirationTime('5m')
      .setJti(randomBytes(8).toString('hex'))
      .sign(forgedKey);
    await expectRefused(fx, forged, /signature is invalid/);
  });

  it("refuses an expired token signed with the issuer's own key", async () => {
    const key = await importJWK(external.signingKey, 'ES256');
    const now = Math.floor(Date.now() / 1000);
    const build = (exp: number) =>
      new SignJWT({ scope: 'pa.read pa.write', client_id: CLIENT_ID })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: external.signingKey.kid as string })
        .setIssuer(external.issuer)
        .setAudience(fx.resource)
        .setSubject(CLIENT_ID)
        .setIssuedAt(now - 600)
        .setExpirationTime(exp)
        .setJti(randomBytes(8).toString('hex'))
        .sign(key);
    await expectRefused(fx, await build(now - 60), /expired/);
    // The same token, still valid, is accepted: the refusal above is the expiry alone.
    expect((await mcpInit(fx, await build(now + 60))).status).toBe(200);
  });

  it('accepts opaque tokens through the introspection endpoint, for this resource only', async () => {
    const token = await external.token(fx.resource, 'opaque');
    expect(() => decodeProtectedHeader(token)).toThrow();
    expect((await mcpInit(fx, token)).status).toBe(200);

    const other = await external.token(OTHER_AUDIENCE, 'opaque');
    await expectRefused(fx, other, /audience/);
    // Made up: the issuer does not know it.
    await expectRefused(fx, randomBytes(32).toString('base64url'), /not active/);
  });
});
