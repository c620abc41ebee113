import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';

// The HTTP layer's settings as the configuration reads them (environment → typed, validated values).

describe('HTTP app settings in the configuration', () => {
  it('has safe defaults: stateful sessions, no extra origins, bounded sessions and a shutdown grace', () => {
    const { config } = loadConfig({ env: { MCP_MODE: 'http' } });
    expect(config.server.sessions).toBe('stateful');
    expect(config.server.allowed_origins).toEqual([]);
    expect(config.server.body_limit_mb).toBeUndefined();
    expect(config.server.max_sessions).toBe(1000);
    expect(config.server.session_idle_timeout_s).toBe(1800);
    expect(config.server.shutdown_grace_s).toBe(10);
  });

  it('reads them from the environment, origins as a comma-separated list', () => {
    const { config } = loadConfig({
      env: {
        MCP_MODE: 'http',
        MCP_SESSIONS: 'stateless',
        MCP_ALLOWED_ORIGINS: ' https://app.example.com, http://localhost:5173 ,,',
        MCP_BODY_LIMIT_MB: '2.5',
        MCP_MAX_SESSIONS: '50',
        MCP_SESSION_IDLE_TIMEOUT: '600',
        MCP_SHUTDOWN_GRACE: '0.5',
      },
    });
    expect(config.server.sessions).toBe('stateless');
    expect(config.server.allowed_origins).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(config.server.body_limit_mb).toBe(2.5);
    expect(config.server.max_sessions).toBe(50);
    expect(config.server.session_idle_timeout_s).toBe(600);
    expect(config.server.shutdown_grace_s).toBe(0.5);
  });

  it('refuses values that are not origins or not a session mode, saying what is allowed', () => {
    let error: unknown;
    try {
      loadConfig({
        env: {
          MCP_MODE: 'http',
          MCP_SESSIONS: 'sticky',
          MCP_ALLOWED_ORIGINS: 'https://ok.example,https://app.example.com/path,*',
        },
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^server\.sessions: .*"stateful", "stateless"/),
        expect.stringMatching(
          /^server\.allowed_origins\.1: not an origin \(allowed: scheme:\/\/host\[:port\]/,
        ),
        expect.stringMatching(/^server\.allowed_origins\.2: not an origin/),
      ]),
    );
    expect(problems.some((p) => p.startsWith('server.allowed_origins.0'))).toBe(false);
  });
});
