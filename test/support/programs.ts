/**
 * Finding the external programs some suites drive (nginx, HAProxy, testssl.sh, sqlmap, script, psql…), without a
 * shell: the first executable file of that name on PATH (then in `also`, e.g. the sbin folders).
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** The first of `names` that is an executable file on PATH or in `also`, or null. */
export function findProgram(names: string | readonly string[], also: readonly string[] = []): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), ...also];
  for (const name of typeof names === 'string' ? [names] : names) {
    for (const dir of dirs) {
      if (dir === '') continue;
      const file = path.join(dir, name);
      try {
        accessSync(file, constants.X_OK);
        return file;
      } catch {
        // not here
      }
    }
  }
  return null;
}
