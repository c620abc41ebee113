// Writes docs/api.md, the API reference, from the running server (src/mcp/reference.ts): every tool, resource,
// template and prompt as the server lists them, with the results of real example calls, then the HTTP endpoints.
// Run after `npm run build`:
//
//   node scripts/api-reference.mjs           write docs/api.md
//   node scripts/api-reference.mjs --check   exit 1 if docs/api.md differs from what the server generates
//
// The text is formatted with Prettier as `npm run lint` expects; test/docs/api-reference.test.ts fails when the
// committed file differs from it.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { argv, cwd, exit, stderr, stdout } from 'node:process';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import { loadConfig } from '../dist/config/index.js';
import { apiReference } from '../dist/mcp/reference.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const target = path.join(root, 'docs/api.md');
const check = argv.includes('--check');

// The configuration's defaults (no file, no environment): what a new installation runs with.
const { config } = loadConfig({ env: {} });
const { markdown } = await apiReference({ maxUploadBytes: config.documents.max_file_size_bytes });
const text = await prettier.format(markdown, {
  ...(await prettier.resolveConfig(target)),
  filepath: target,
});

if (check) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    // missing: differs
  }
  if (current !== text) {
    stderr.write('docs/api.md is out of date: run `npm run build && node scripts/api-reference.mjs`\n');
    exit(1);
  }
  stdout.write('docs/api.md is up to date\n');
} else {
  writeFileSync(target, text);
  stdout.write(`wrote ${path.relative(cwd(), target) || target} (${text.length} characters)\n`);
}
