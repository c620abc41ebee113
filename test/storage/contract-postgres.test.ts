import { openPostgresStore } from '../../src/storage/postgres/index.js';
import { createTestDatabase, describeWithServer, quietLogger } from '../support/postgres.js';
import { storeContract } from './contract.js';

// The real server (MCP_PA_TEST_DATABASE_URL): a fresh database for this file, dropped at the end.
describeWithServer('PostgreSQL server', () => {
  storeContract('PostgreSQL server', async () => {
    const db = await createTestDatabase();
    return {
      open: (o) =>
        openPostgresStore(
          { kind: 'postgresql', connectionString: db.url, poolSize: 4 },
          { logger: quietLogger, vectorDimensions: 4, documentsDir: o?.documentsDir },
        ),
      singleUser: false,
      close: () => db.drop(),
    };
  });
});
