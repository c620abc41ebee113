import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe } from 'vitest';
import { everyToolScenario } from './e2e-scenario.js';
import { startFixture, type Fixture } from './http-app-fixture.js';

// End-to-end over HTTPS: the same every-tool scenario as over stdio, driven by the SDK's StreamableHTTPClientTransport
// against the Fastify app on 127.0.0.1 with a certificate from a test CA, on a real SQLite store. Once with stateful
// sessions (notifications on the session's GET stream), once stateless (pooled servers, no stream).

for (const sessions of ['stateful', 'stateless'] as const) {
  describe(`every tool over HTTPS (${sessions})`, () => {
    let fx: Fixture;
    let client: Client;

    beforeAll(async () => {
      fx = await startFixture({ sessions });
      ({ client } = await fx.connect());
    });

    afterAll(async () => {
      await fx?.close();
    });

    everyToolScenario(() => client, { notifications: sessions === 'stateful' });
  });
}
