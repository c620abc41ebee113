/**
 * The metrics registry's label bounds and the metrics listener without a token (loopback), over real HTTP; the
 * configuration rules of the metrics section.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics, metricsAccess } from '../../src/observability/metrics.js';
import { startMetricsListener, type MetricsListener } from '../../src/servers/http/metrics-listener.js';

const quiet = createLogger('silent');

describe('Metrics', () => {
  it('folds ids out of route labels and caps the number of distinct routes and tools', async () => {
    const m = new Metrics({ processMetrics: false });
    m.observeHttp(undefined, '/oauth/interaction/Zq3vK9xY_aB7cD8eF9gH0', 'GET', 200, 0.01);
    m.observeHttp('/oauth/*', '/oauth/reg/client-1234', 'DELETE', 204, 0.01);
    m.observeHttp('/mcp', '/mcp', 'BREW', 200, 0.01);
    for (let i = 0; i < 100; i++)
      m.observeHttp(
        `/r${'x'.repeat(i % 10)}/${String.fromCharCode(97 + (i % 26))}${i}`,
        '/',
        'GET',
        200,
        0.001,
      );
    for (let i = 0; i < 200; i++) m.observeToolCall(`tool_${i}`, 'ok', 0.001);
    const text = (await m.render()).body;
    expect(text).toContain('route="/oauth/interaction/:id"');
    expect(text).toContain('route="/oauth/reg/:id"');
    expect(text).toContain('method="other"');
    expect(text).not.toContain('Zq3vK9xY');
    expect(text).toContain('route="other"');
    const routes = new Set(
      [...text.matchAll(/mcp_pa_http_requests_total\{route="([^"]*)"/g)].map((r) => r[1]),
    );
    expect(routes.size).toBeLessThanOrEqual(65);
    expect(text).toContain('mcp_pa_tool_calls_total{tool="other",outcome="ok"}');
    const tools = new Set([...text.matchAll(/mcp_pa_tool_calls_total\{tool="([^"]*)"/g)].map((r) => r[1]));
    expect(tools.size).toBeLessThanOrEqual(129);
  });

  it('keeps OAuth error codes and grant types to their vocabularies', async () => {
    const m = new Metrics({ processMetrics: false });
    m.observeToken('authorization_code', null);
    m.observeToken('password', 'unsupported_grant_type');
    m.observeToken('refresh_token', 'made up <script>');
    m.observeAudit('rate_limit.hit', { limit: 'token-failure' });
    m.observeAudit('rate_limit.hit', { limit: 'Not A Limit!' });
    const text = (await m.render()).body;
    expect(text).toContain('mcp_pa_oauth_tokens_issued_total{grant_type="authorization_code"} 1');
    expect(text).toContain(
      'mcp_pa_oauth_token_failures_total{grant_type="other",error="unsupported_grant_type"} 1',
    );
    expect(text).toContain('mcp_pa_oauth_token_failures_total{grant_type="refresh_token",error="other"} 1');
    expect(text).toContain('mcp_pa_rate_limit_hits_total{limit="token-failure"} 1');
    expect(text).toContain('mcp_pa_rate_limit_hits_total{limit="other"} 1');
    expect(text).toContain('mcp_pa_audit_events_total{type="rate_limit.hit"} 2');
  });

  it('metricsAccess: no token lets anyone in; with one, only that bearer token', () => {
    expect(metricsAccess(undefined, undefined).ok).toBe(true);
    const token = 't'.repeat(40);
    expect(metricsAccess(token, `Bearer ${token}`).ok).toBe(true);
    expect(metricsAccess(token, `bearer ${token}`).ok).toBe(true);
    expect(metricsAccess(token, `Bearer ${token}x`).ok).toBe(false);
    expect(metricsAccess(token, `Basic ${token}`).ok).toBe(false);
    expect(metricsAccess(token, undefined).ok).toBe(false);
  });
});

describe('the metrics listener without a token', () => {
  let listener: MetricsListener | undefined;
  afterEach(async () => {
    await listener?.close();
    listener = undefined;
  });

  it('answers GET and HEAD /metrics on loopback, and only that', async () => {
    const m = new Metrics({ processMetrics: false });
    m.sources.sessions = () => 3;
    listener = await startMetricsListener({
      host: '127.0.0.1',
      port: 0,
      token: undefined,
      metrics: m,
      logger: quiet,
    });
    const res = await fetch(listener.url);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('mcp_pa_mcp_sessions 3');
    const head = await fetch(listener.url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect((await fetch(listener.url.replace('/metrics', '/'))).status).toBe(404);
    expect((await fetch(listener.url, { method: 'DELETE' })).status).toBe(405);
  });
});

describe('metrics configuration', () => {
  const load = (env: Record<string, string>) => loadConfig({ env: { MCP_MODE: 'http', ...env } }).config;

  it('reads MCP_METRICS_* and redacts the token when printed', () => {
    const c = load({ MCP_METRICS_PORT: '9464', MCP_METRICS_HOST: '::1' });
    expect(c.metrics).toEqual({ port: 9464, host: '::1' });
    const token = 'k'.repeat(40);
    const printed = JSON.stringify(redactConfig(load({ MCP_METRICS_TOKEN: token })));
    expect(printed).not.toContain(token);
    expect(printed).toContain('"token":"[redacted]"');
  });

  it('refuses a non-loopback listener without a token, and a short token', () => {
    expect(() => load({ MCP_METRICS_PORT: '9464', MCP_METRICS_HOST: '0.0.0.0' })).toThrow(
      /metrics\.host: a metrics listener on 0\.0\.0\.0 needs metrics\.token/,
    );
    expect(() => load({ MCP_METRICS_TOKEN: 'short' })).toThrow(ConfigError);
    expect(() => load({ MCP_METRICS_TOKEN: 'short' })).toThrow(/at least 32 characters/);
    const ok = load({
      MCP_METRICS_PORT: '9464',
      MCP_METRICS_HOST: '0.0.0.0',
      MCP_METRICS_TOKEN: 'x'.repeat(32),
    });
    expect(ok.metrics.host).toBe('0.0.0.0');
  });
});
