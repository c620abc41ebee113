/**
 * Form posts as browsers really send them. The pages carry `Referrer-Policy: no-referrer`, under which Chromium
 * (and the Fetch standard) sends `Origin: null` even for a form posted from the page's own origin, together with
 * `Sec-Fetch-Site: same-origin` — found by oauth-pages.test.ts in headless Chromium, where every sign-in was refused
 * with 403. The server accepts `Origin: null` only with `Sec-Fetch-Site: same-origin` (a header no page can set);
 * with any other or no Sec-Fetch-Site it stays a cross-origin post. Runs without a browser (the fixture's raw
 * HTTPS cookie jar), so it holds on machines without Chromium too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  parseForms,
  pkcePair,
  startOAuthFixture,
  type Browser,
  type OAuthFixture,
  type TestUser,
} from '../auth/oauth-fixture.js';

const REDIRECT = 'http://127.0.0.1/cb';

describe('form posts with Origin: null (as browsers send them under no-referrer)', () => {
  let fx: OAuthFixture;
  let user: TestUser;
  let clientId = '';

  beforeAll(async () => {
    fx = await startOAuthFixture();
    user = await fx.addUser();
    const reg = await fx.register({
      client_name: 'Origin null client',
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
    });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    clientId = String(reg.body['client_id']);
  }, 90_000);

  afterAll(async () => {
    await fx?.close();
  });

  /** A browser on the sign-in page of a new authorization request: the form's action and CSRF token. */
  async function loginPage(browser: Browser): Promise<{ action: string; csrf: string }> {
    const { challenge } = await pkcePair();
    const az = new URL(`${fx.origin}/oauth/authorize`);
    az.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      scope: 'pa.read',
      state: 'origin-null',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: fx.resource,
    }).toString();
    const { res, url } = await browser.follow(az.href, fx.origin);
    expect(res.status, res.text.slice(0, 300)).toBe(200);
    const form = parseForms(res.text).find((f) => f.fields.has('password'));
    expect(form, 'the sign-in form').toBeDefined();
    return { action: new URL(form?.action ?? '', url).href, csrf: form?.fields.get('csrf') ?? '' };
  }

  it('refuses Origin: null without Sec-Fetch-Site: same-origin, on the sign-in and the account forms', async () => {
    const browser = fx.browser();
    const login = await loginPage(browser);
    const accountPage = await browser.request(`${fx.origin}/account/apps`);
    const accountForm = parseForms(accountPage.text).find((f) => f.fields.has('password'));
    expect(accountForm?.action).toBe('/account/login');
    const forms = [
      { name: 'sign-in', action: login.action, csrf: login.csrf },
      {
        name: 'account sign-in',
        action: `${fx.origin}/account/login`,
        csrf: accountForm?.fields.get('csrf') ?? '',
      },
    ];
    const fetchSites: (string | undefined)[] = [undefined, 'cross-site', 'same-site', 'none', 'SAME-ORIGIN'];
    for (const form of forms) {
      for (const site of fetchSites) {
        const res = await browser.request(form.action, {
          form: { csrf: form.csrf, username: user.username, password: user.password },
          headers: { origin: 'null', ...(site !== undefined ? { 'sec-fetch-site': site } : {}) },
        });
        expect(res.status, `${form.name}, Sec-Fetch-Site ${site ?? 'absent'}`).toBe(403);
        expect(res.headers.location).toBeUndefined();
      }
    }
    expect(fx.logs()).toMatch(/"type":"csrf\.failure"/);
  });

  it('accepts Origin: null with Sec-Fetch-Site: same-origin (and still checks the CSRF token)', async () => {
    const browser = fx.browser();
    const login = await loginPage(browser);
    const headers = { origin: 'null', 'sec-fetch-site': 'same-origin' };
    const forged = await browser.request(login.action, {
      form: { csrf: `${login.csrf.slice(0, -2)}xx`, username: user.username, password: user.password },
      headers,
    });
    expect(forged.status).toBe(403);
    const posted = await browser.request(login.action, {
      form: { csrf: login.csrf, username: user.username, password: user.password },
      headers,
    });
    expect(posted.status, posted.text.slice(0, 300)).toBe(303);
    expect(String(posted.headers.location)).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/oauth\/authorize\//);
  });
});
