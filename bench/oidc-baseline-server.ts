/**
 * The reference for the token-endpoint benchmark: oidc-provider (the version mcp-pa embeds) with its default
 * in-memory adapter (its MemoryAdapter class, given a larger LRU store: see below), served over HTTPS by `node:https` + `provider.callback()` on 127.0.0.1, configured like ours
 * where the token endpoint is concerned (src/auth/provider.ts): PKCE S256 required, one resource indicator (the
 * server's `/mcp` URI) for which access tokens are JWTs (at+jwt) signed ES256, refresh tokens issued to every client
 * allowed the grant and rotated on every use, the same lifetimes, and one public web client with an https redirect
 * URI (token_endpoint_auth_method none), as the benchmark registers with ours.
 *
 * The library's own interactions (sign-in and consent pages) are not part of the measurement, so instead of a login
 * flow this server has a bench-only route minting authorization codes directly with the library's models, shaped like
 * the codes ours hands out after a remembered consent: one signed-in session and one grant shared by every code,
 * bound to the session (`expiresWithSession`, as the library does for scopes without offline_access), with the PKCE
 * challenge the caller sends.
 *
 *   POST /bench/codes  {"challenges": ["<S256 challenge>", …]}  →  {"codes": ["…", …]}
 *
 * Run as a child process: prints `listening {"port":…,"clientId":…,"redirectUri":…,"scope":…,"resource":…}` on
 * stdout once ready, stops on SIGTERM.
 *
 *   node oidc-baseline-server.js CERT KEY
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { errors, Provider } from 'oidc-provider';

const CLIENT_ID = 'bench-public-client';
const REDIRECT_URI = 'https://client.example.com/callback';
const SCOPE = 'pa.read pa.write';
/** The same paths as ours (src/auth/provider.ts ROUTES), so the load generator posts to /oauth/token on both. */
const ROUTES = {
  authorization: '/oauth/authorize',
  token: '/oauth/token',
  jwks: '/oauth/jwks',
  revocation: '/oauth/revoke',
  introspection: '/oauth/introspect',
} as const;
const TOKEN_TTL_S = 900;
const ACCOUNT_ID = 'bench-account';
const STORE_ENTRIES = 100_000;

/** The library models used here that src/types/oidc-provider.d.ts does not declare. */
interface SessionInstance {
  readonly uid: string;
  loginAccount(details: { accountId: string }): void;
  ensureClientContainer(clientId: string): void;
  grantIdFor(clientId: string, value?: string): string | undefined;
  sidFor(clientId: string): string | undefined;
  authTime(): number | undefined;
  save(ttl: number): Promise<string>;
}
interface Models {
  readonly Session: new () => SessionInstance;
  readonly AuthorizationCode: new (fields: Record<string, unknown>) => { save(): Promise<string> };
}

/** Reads a request body of at most `limit` bytes. */
function readBody(req: IncomingMessage, limit = 1 << 20): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function main(): Promise<void> {
  const [certFile, keyFile] = process.argv.slice(2);
  if (!certFile || !keyFile) throw new Error('usage: oidc-baseline-server CERT KEY');
  const tls = { cert: readFileSync(certFile), key: readFileSync(keyFile) };

  // Listen first: the issuer and the resource carry the port.
  const handler: { current?: (req: IncomingMessage, res: ServerResponse) => void } = {};
  const server: Server = createServer(tls, (req, res) => handler.current?.(req, res));
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const issuer = `https://127.0.0.1:${port}`;
  const resource = `${issuer}/mcp`;

  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig', kid: 'bench-es256' };

  const accounts = new Map([[ACCOUNT_ID, { accountId: ACCOUNT_ID }]]);
  // The library's own default adapter, MemoryAdapter, on its own LRU store (what `adapter` unset gives), only with
  // room for 100 000 entries instead of 1 000: the default capacity drops a round's codes before they are used.
  // Deep imports (the package has no exports map and ships no types), hence the specifiers in variables.
  const adapterModule = 'oidc-provider/lib/adapters/memory_adapter.js';
  const lruModule = 'oidc-provider/lib/helpers/lru.js';
  const { default: MemoryAdapter } = (await import(adapterModule)) as {
    default: new (model: string, store: unknown) => unknown;
  };
  const { default: Lru } = (await import(lruModule)) as { default: new (o: { maxSize: number }) => unknown };
  const storage = new Lru({ maxSize: STORE_ENTRIES });
  const provider = new Provider(issuer, {
    adapter: (model: string) => new MemoryAdapter(model, storage),
    clients: [
      {
        client_id: CLIENT_ID,
        token_endpoint_auth_method: 'none',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        id_token_signed_response_alg: 'ES256',
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    routes: ROUTES,
    scopes: ['openid', 'offline_access', 'pa.read', 'pa.write'],
    responseTypes: ['code'],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (indicator !== resource) throw new errors.InvalidTarget('unknown resource');
          return {
            scope: SCOPE,
            audience: resource,
            accessTokenTTL: TOKEN_TTL_S,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    ttl: {
      AccessToken: () => TOKEN_TTL_S,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 30 * 60,
      Session: 14 * 24 * 3600,
      Grant: 30 * 24 * 3600,
      RefreshToken: () => 30 * 24 * 3600,
    },
    issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    findAccount: (_ctx: unknown, sub: string) => {
      const account = accounts.get(sub);
      return account
        ? { accountId: account.accountId, claims: () => ({ sub: account.accountId }) }
        : undefined;
    },
  });

  // One signed-in session and the grant of a remembered consent, as ours has after the first authorization.
  const client = await provider.Client.find(CLIENT_ID);
  if (!client) throw new Error('the bench client is not configured');
  const grant = new provider.Grant({ accountId: ACCOUNT_ID, clientId: CLIENT_ID });
  grant.addResourceScope(resource, SCOPE);
  const grantId = await grant.save();
  const models = provider as unknown as Models;
  const session = new models.Session();
  session.loginAccount({ accountId: ACCOUNT_ID });
  session.ensureClientContainer(CLIENT_ID);
  session.grantIdFor(CLIENT_ID, grantId);
  await session.save(14 * 24 * 3600);
  const sid = session.sidFor(CLIENT_ID);

  const mint = async (challenges: readonly string[]): Promise<string[]> =>
    Promise.all(
      challenges.map((codeChallenge) =>
        new models.AuthorizationCode({
          accountId: ACCOUNT_ID,
          authTime: session.authTime(),
          client,
          grantId,
          redirectUri: REDIRECT_URI,
          resource,
          scope: SCOPE,
          sessionUid: session.uid,
          sid,
          expiresWithSession: true,
          codeChallenge,
          codeChallengeMethod: 'S256',
        }).save(),
      ),
    );

  // Failed grants would otherwise show only the generic error: say why on stderr (no token values).
  provider.on('grant.error', (_ctx: unknown, err: unknown) => {
    const e = err as { error?: string; error_detail?: string; message?: string };
    process.stderr.write(`baseline grant error: ${e.error ?? ''} ${e.error_detail ?? e.message ?? ''}\n`);
  });
  const callback = provider.callback();
  handler.current = (req, res) => {
    if (req.url !== '/bench/codes') {
      callback(req, res);
      return;
    }
    void (async () => {
      try {
        if (req.method !== 'POST') throw new Error('POST only');
        const { challenges } = JSON.parse(await readBody(req)) as { challenges?: unknown };
        if (!Array.isArray(challenges) || !challenges.every((c) => typeof c === 'string')) {
          throw new Error('challenges must be a list of strings');
        }
        const codes = await mint(challenges as string[]);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ codes }));
      } catch (err) {
        res
          .writeHead(400, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: (err as Error).message }));
      }
    })();
  };
  const ready = {
    storeEntries: STORE_ENTRIES,
    port,
    clientId: CLIENT_ID,
    redirectUri: REDIRECT_URI,
    scope: SCOPE,
    resource,
  };
  process.stdout.write(`listening ${JSON.stringify(ready)}\n`);
  process.once('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}

await main();
