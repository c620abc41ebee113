import path from 'node:path';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { tempDir } from '../support/helpers.js';
import { storeContract } from './contract.js';

storeContract('SQLite', async () => {
  const t = tempDir();
  const file = path.join(t.dir, 'pa.sqlite');
  return {
    open: async (options) => new SqliteStore({ path: file, documentsDir: options?.documentsDir }),
    singleUser: true,
    close: async () => t.cleanup(),
  };
});
