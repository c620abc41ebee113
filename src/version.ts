import { readFileSync } from 'node:fs';

/**
 * The package version, from the package.json of mcp-pa found at or above this module: src/ and dist/ modules sit one
 * folder below it, the bundled entry points (dist/cli.js, dist/servers/local-server.js) one or two.
 */
function readVersion(): string {
  for (const rel of ['../package.json', '../../package.json', './package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'mcp-pa' && pkg.version) return pkg.version;
    } catch {
      // try the next folder up
    }
  }
  return '0.0.0';
}

export const VERSION: string = readVersion();
