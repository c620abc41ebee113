import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe } from 'vitest';
import { openPostgresStore } from '../../src/storage/postgres/index.js';
import {
  createTestDatabase,
  describeWithServer,
  quietLogger,
  type TestDatabase,
} from '../support/postgres.js';
import { everyToolScenario } from './e2e-scenario.js';
import { startFixture, type Fixture } from './http-app-fixture.js';

// The every-tool scenario over HTTPS (test CA, the SDK's StreamableHTTPClientTransport) on the stores HTTP mode
// really uses: embedded PGlite (always) and the real PostgreSQL server (when MCP_PA_TEST_DATABASE_URL is set),
// each under row-level security.

describe('every tool over HTTPS on PGlite (stateful)', () => {
  let fx: Fixture;
  let client: Client;

  beforeAll(async () => {
    fx = await startFixture({
      sessions: 'stateful',
      openStore: (dir) =>
        openPostgresStore({ kind: 'pglite', dataDir: dir }, { logger: quietLogger, vectorDimensions: null }),
    });
    ({ client } = await fx.connect());
  });

  afterAll(async () => {
    await fx?.close();
  });

  everyToolScenario(() => client, { notifications: true });
});

for (const sessions of ['stateful', 'stateless'] as const) {
  describeWithServer(`every tool over HTTPS on PostgreSQL (${sessions})`, () => {
    let db: TestDatabase;
    let fx: Fixture;
    let client: Client;

    beforeAll(async () => {
      db = await createTestDatabase();
      fx = await startFixture({
        sessions,
        openStore: () =>
          openPostgresStore(
            { kind: 'postgresql', connectionString: db.url, poolSize: 4 },
            { logger: quietLogger, vectorDimensions: null },
          ),
      });
      ({ client } = await fx.connect());
    });

    afterAll(async () => {
      await fx?.close();
      await db?.drop();
    });

    everyToolScenario(() => client, { notifications: sessions === 'stateful' });
  });
}
