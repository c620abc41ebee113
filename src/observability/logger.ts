import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The process logger. Always writes to standard error: in stdio mode standard output is the protocol.
 * Anything that looks like a secret is redacted by key name.
 */
export function createLogger(level: string, destination: NodeJS.WritableStream | number = 2): Logger {
  const stream =
    typeof destination === 'number' ? pino.destination({ fd: destination, sync: true }) : destination;
  return pino(
    {
      level,
      base: { name: 'mcp-pa' },
      redact: {
        paths: [
          '*.password',
          '*.secret',
          '*.token',
          '*.api_key',
          '*.authorization',
          '*.content_base64',
          'password',
          'token',
          'secret',
        ],
        censor: '[redacted]',
      },
    },
    stream,
  );
}
