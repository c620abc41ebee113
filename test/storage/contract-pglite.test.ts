import { PgliteDriver } from '../../src/storage/postgres/driver.js';
import { storeOnDriver } from '../../src/storage/postgres/postgres-store.js';
import { quietLogger } from '../support/postgres.js';
import { storeContract } from './contract.js';

// One in-memory PGlite for the suite (starting one takes seconds); each test works in tenants of its own.
storeContract('PGlite', async () => {
  const driver = await PgliteDriver.open(null);
  const options = { logger: quietLogger, vectorDimensions: 4 };
  await storeOnDriver(driver, options, false);
  return {
    open: (o) => storeOnDriver(driver, { ...options, documentsDir: o?.documentsDir }, false),
    singleUser: false,
    close: () => driver.close(),
  };
});
