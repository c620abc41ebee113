// Bundles the executables into single files: loading one file instead of hundreds of modules is most of a
// cold start (docs/adr/0006-bundled-executables.md). The rest of dist/ stays as tsc emitted it.
import { build } from 'esbuild';

await build({
  entryPoints: {
    cli: 'src/cli.ts',
    'servers/local-server': 'src/servers/local-server.ts',
    // HTTP mode, loaded by `mcp-pa serve` only (a path computed at run time, so cli.js stays small).
    'servers/http-server': 'src/servers/http-server.ts',
    // The admin commands (`mcp-pa users|keys|clients …`), loaded by those commands only.
    admin: 'src/admin/index.ts',
  },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  allowOverwrite: true,
  // Native addons, a lazily required module and PGlite (which loads its WebAssembly and data files from beside
  // itself): resolved from node_modules at run time.
  external: ['better-sqlite3', 'rrule', 'pg-native', '@electric-sql/*', '@node-rs/*', 'oidc-provider'],
  // Bundled CommonJS dependencies (pino) call require().
  banner: {
    js: "import { createRequire as __mcpPaRequire } from 'node:module'; const require = __mcpPaRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
