/**
 * A tiny TCP load balancer for tests, the way a TLS-passthrough balancer sits in front of several replicas: a
 * node:net server on 127.0.0.1 that pipes each incoming connection, bytes untouched, to one backend. TLS ends at the
 * replica (each presents its own certificate from the test CA, valid for 127.0.0.1), so the balancer sees no HTTP:
 * it picks a backend per connection — round-robin by default, or every connection to one named backend while pinned.
 * A keep-alive connection stays on the backend it was given, exactly like a real layer-4 balancer.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface LoadBalancer {
  /** https://127.0.0.1:PORT — what the replicas are told is their public URL. */
  readonly origin: string;
  readonly port: number;
  /** Sets (or replaces) the backends, by name; connections go to them in the order given. */
  setBackends(backends: Readonly<Record<string, number>>): void;
  /** Sends every new connection to one backend (null: round-robin again). */
  pin(name: string | null): void;
  /** The backend each connection went to, in order (since the start or the last resetLog()). */
  log(): readonly string[];
  resetLog(): void;
  /** Ends every open connection (a failover, a restart of the balancer, an idle timeout); keeps listening. */
  dropConnections(): void;
  /** Closes the listener and every open connection. */
  close(): Promise<void>;
}

export async function startLoadBalancer(): Promise<LoadBalancer> {
  let backends: [string, number][] = [];
  let pinned: string | null = null;
  let next = 0;
  let routed: string[] = [];
  const open = new Set<Socket>();

  const pick = (): [string, number] | undefined => {
    if (pinned !== null) return backends.find(([name]) => name === pinned);
    if (backends.length === 0) return undefined;
    const chosen = backends[next % backends.length];
    next += 1;
    return chosen;
  };

  const server: Server = createServer((client) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    const target = pick();
    if (!target) {
      client.destroy();
      return;
    }
    routed.push(target[0]);
    const upstream = connect({ host: '127.0.0.1', port: target[1] });
    open.add(upstream);
    upstream.once('close', () => open.delete(upstream));
    // Either side failing or closing ends the pair (a reset is passed on as a reset).
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('load balancer has no port');
  const port = address.port;

  return {
    origin: `https://127.0.0.1:${port}`,
    port,
    setBackends(map) {
      backends = Object.entries(map);
      next = 0;
    },
    pin(name) {
      if (name !== null && !backends.some(([n]) => n === name)) throw new Error(`no backend named ${name}`);
      pinned = name;
    },
    log: () => routed,
    resetLog() {
      routed = [];
    },
    dropConnections() {
      for (const socket of open) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
