import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configurationReference, ENV_BINDINGS, FLAG_BINDINGS } from '../../src/config/index.js';
import { ROOT } from '../support/helpers.js';

describe('docs/configuration.md', () => {
  const doc = readFileSync(path.join(ROOT, 'docs/configuration.md'), 'utf8');

  it('is exactly what the schema generates (run `node dist/cli.js config reference > docs/configuration.md`)', () => {
    expect(doc).toBe(configurationReference());
  });

  it('lists every environment variable, alias and flag', () => {
    for (const b of ENV_BINDINGS) {
      expect(doc).toContain(`\`${b.name}\``);
      for (const a of b.aliases ?? []) expect(doc).toContain(`\`${a}\``);
    }
    for (const f of FLAG_BINDINGS) expect(doc).toContain(`\`--${f.flag}\``);
    expect(doc).toContain('`MCP_CONFIG`');
  });
});
