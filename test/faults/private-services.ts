/**
 * Private PostgreSQL and Redis servers for the fault tests, so a test can stop and start them without touching the
 * shared ones other suites use (127.0.0.1:5432, :6379). Both listen on 127.0.0.1 only, on a free port, with their
 * files in a temporary folder; close() stops them and removes the folder.
 *
 * PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as the `postgres` OS user (runuser), and the
 * folder is given to that user.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, sleep } from './support.js';

const IS_ROOT = process.getuid?.() === 0;

/** The folder of PostgreSQL's server programs (initdb, pg_ctl), or null when none is installed. */
export function postgresBinDir(): string | null {
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => existsSync(path.join(base, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return path.join(base, versions[0], 'bin');
  }
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  const found = which.stdout.trim();
  return which.status === 0 && found !== '' ? path.dirname(found) : null;
}

/** Whether a program is on PATH. */
export function onPath(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).status === 0;
}

function postgresUser(): { uid: number; gid: number } {
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) throw new Error('running as root, and there is no postgres OS user');
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

export interface PrivatePostgres {
  readonly port: number;
  /** postgresql://postgres@127.0.0.1:PORT/postgres (trust authentication). */
  readonly url: string;
  /** pg_ctl stop -m <mode> -w: resolves once the server is down. */
  stop(mode?: 'fast' | 'immediate' | 'smart'): Promise<void>;
  /** pg_ctl start -w: resolves once the server accepts connections. */
  start(): Promise<void>;
  /** The server's log file. */
  log(): string;
  close(): Promise<void>;
}

/** initdb into a temporary folder and start the cluster on a free 127.0.0.1 port (sockets in the folder). */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  if (bin === null) throw new Error('PostgreSQL server programs (initdb) are not installed');
  const root = mkdtempSync(path.join(tmpdir(), 'mcp-pa-fault-pg-'));
  const data = path.join(root, 'data');
  const logFile = path.join(root, 'server.log');
  chmodSync(root, 0o700);
  if (IS_ROOT) {
    const { uid, gid } = postgresUser();
    chownSync(root, uid, gid);
  }
  const run = (program: string, args: string[], timeout = 60_000): string => {
    const argv = IS_ROOT
      ? ['runuser', '-u', 'postgres', '--', path.join(bin, program), ...args]
      : [path.join(bin, program), ...args];
    const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout, cwd: root });
    if (r.error) throw r.error;
    if (r.status !== 0)
      throw new Error(`${program} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  run('initdb', [
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--no-sync',
    '--no-instructions',
  ]);
  const port = await freePort();
  const options = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40`;
  const start = async (): Promise<void> => {
    run('pg_ctl', ['-D', data, '-l', logFile, '-o', options, '-w', '-t', '60', 'start']);
  };
  await start();
  let stopped = false;
  return {
    port,
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    async stop(mode = 'fast') {
      run('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
    },
    start,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async close() {
      if (stopped) return;
      stopped = true;
      try {
        // Stops it when running; "not running" is fine.
        const argv = IS_ROOT
          ? ['runuser', '-u', 'postgres', '--', path.join(bin, 'pg_ctl')]
          : [path.join(bin, 'pg_ctl')];
        spawnSync(
          argv[0] as string,
          [...argv.slice(1), '-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop'],
          {
            encoding: 'utf8',
            timeout: 40_000,
          },
        );
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
}

export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  /** SIGKILL: the server is gone at once, its clients see the connection drop. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: it keeps nothing). */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** redis-server on a free 127.0.0.1 port, keeping nothing on disk. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'mcp-pa-fault-redis-'));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const start = async (): Promise<void> => {
    const proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    let out = '';
    proc.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
    proc.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + 15_000;
    while (!/Ready to accept connections/i.test(out)) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited: ${out}`);
      if (Date.now() > deadline) throw new Error(`redis-server not ready within 15 s: ${out}`);
      await sleep(25);
    }
  };
  await start();
  const kill = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    kill,
    start,
    async close() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
