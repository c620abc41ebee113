import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Uploaded document content kept as files: <dir>/<tenant>/<item id>, owner-only. */
export class FolderContent {
  constructor(private readonly dir: string) {}

  private file(tenant: string, id: string): string {
    if (!/^[A-Za-z0-9_-]+$/.test(tenant) || !/^[A-Za-z0-9_-]+$/.test(id)) {
      throw new Error('invalid content key');
    }
    return path.join(this.dir, tenant, id);
  }

  write(tenant: string, id: string, content: Uint8Array): void {
    const target = this.file(tenant, id);
    mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
    const tmp = `${target}.tmp-${process.pid}`;
    writeFileSync(tmp, content, { mode: 0o600 });
    renameSync(tmp, target);
  }

  read(tenant: string, id: string): Uint8Array | null {
    try {
      return new Uint8Array(readFileSync(this.file(tenant, id)));
    } catch {
      return null;
    }
  }

  remove(tenant: string, id: string): void {
    rmSync(this.file(tenant, id), { force: true });
  }
}
