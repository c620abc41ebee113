/**
 * The authorization server's pages as rendered strings: every dynamic value escaped in every field, no scripts,
 * no event handlers, no assets from anywhere, the one stylesheet matching the CSP hash, every form a POST with
 * the CSRF token, and each page's content. Checked with DOM-free regexes: once every value is escaped, the only
 * `<` `>` `"` in the output are the renderer's own, so a tag scan sees exactly the page's real markup.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  html,
  PAGE_CSP,
  PAGE_STYLE,
  renderAppsPage,
  renderConsentPage,
  renderErrorPage,
  renderLoginPage,
  renderSignupPage,
  SafeHtml,
  type ConnectedApp,
} from '../../src/auth/pages.js';

/** A hostile value tagged with its field, so the test can tell each field was rendered (and escaped). */
const hostile = (field: string): string =>
  `${field}:<script>alert(1)</script>"><img src=x onerror=alert(1)>'&`;
const hostileEscaped = (field: string): string =>
  `${field}:&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&#39;&amp;`;
/** The same for link and form targets, which must stay same-origin paths (no whitespace allowed there). */
const hostilePath = (field: string): string =>
  `/${field}?q=<script>alert(1)</script>"><img/src=x/onerror=alert(1)>'&`;
const hostilePathEscaped = (field: string): string =>
  `/${field}?q=&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img/src=x/onerror=alert(1)&gt;&#39;&amp;`;

const ALLOWED_TAGS = new Set([
  'html',
  'head',
  'meta',
  'title',
  'body',
  'main',
  'h1',
  'p',
  'strong',
  'code',
  'span',
  'a',
  'form',
  'input',
  'label',
  'button',
  'ul',
  'li',
  'div',
  'table',
  'caption',
  'thead',
  'tbody',
  'tr',
  'th',
  'td',
  'time',
  'footer',
]);
const ALLOWED_ATTRIBUTES = new Set([
  'lang',
  'charset',
  'name',
  'content',
  'class',
  'id',
  'role',
  'method',
  'action',
  'type',
  'value',
  'for',
  'autocomplete',
  'autocapitalize',
  'spellcheck',
  'required',
  'href',
  'scope',
  'aria-label',
  'aria-describedby',
]);

/** Whitespace collapsed and void elements written `<x>` rather than `<x />`, for content checks. */
const norm = (page: string): string => page.replace(/\s+/g, ' ').replace(/ ?\/>/g, '>');

function styleBlocks(page: string): string[] {
  return [...page.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1] ?? '');
}

/** The page with the doctype and the (constant) stylesheet taken out: what remains is tags and escaped text. */
function markup(page: string): string {
  return page.replace(/^<!doctype html>/, '').replace(/<style>[\s\S]*?<\/style>/g, '<style></style>');
}

/** Every tag well-formed, double-quoted attributes only, tag and attribute names from the allow-lists. */
function assertSafeMarkup(page: string): void {
  expect(page.startsWith('<!doctype html>\n<html lang="en">')).toBe(true);
  const body = markup(page);
  const tags = [...body.matchAll(/<[^>]*>/g)].map((m) => m[0]);
  expect(tags.length).toBeGreaterThan(5);
  for (const tag of tags) {
    const m = /^<\/?([a-z][a-z0-9]*)((?:\s+[a-z-]+(?:="[^"<>]*")?)*)\s*\/?>$/.exec(tag);
    expect(m, `malformed tag ${tag}`).not.toBeNull();
    const name = m?.[1] ?? '';
    if (name !== 'style') expect(ALLOWED_TAGS.has(name), `tag <${name}>`).toBe(true);
    for (const attr of (m?.[2] ?? '').matchAll(/([a-z-]+)(?:="[^"]*")?/g)) {
      expect(ALLOWED_ATTRIBUTES.has(attr[1] ?? ''), `attribute ${attr[1]} in ${tag}`).toBe(true);
    }
  }
  const text = body.replace(/<[^>]*>/g, '');
  expect(text).not.toMatch(/[<>"']/);
  expect(text).not.toMatch(/&(?!(?:amp|lt|gt|quot|#39);)/);
  // No raw quote or apostrophe anywhere outside attribute delimiters, so no value can open a new attribute.
  expect(body.replace(/="[^"<>]*"/g, '')).not.toMatch(/["']/);
  // No scripts, handlers, inline styles, or assets from anywhere.
  expect(page).not.toMatch(/<script/i);
  expect(page).not.toMatch(/<(?:link|img|iframe|object|embed|base|svg|video|audio|source)\b/i);
  expect(body).not.toMatch(/\son[a-z]+="/i);
  expect(body).not.toMatch(/\sstyle="/i);
  expect(page).not.toMatch(/https?:\/\//i);
  expect(body).not.toMatch(
    /\s(?:src|href|action|srcset|poster|data|formaction)="(?:[a-z][a-z0-9+.-]*:|\/\/)/i,
  );
  for (const css of styleBlocks(page)) {
    expect(css).not.toMatch(/@import|url\(|expression\(/i);
  }
}

interface Form {
  readonly attributes: string;
  readonly content: string;
}
function forms(page: string): Form[] {
  return [...norm(page).matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].map((m) => ({
    attributes: m[1] ?? '',
    content: m[2] ?? '',
  }));
}
function assertFormsPostWithCsrf(page: string, csrfEscaped: string, count: number): Form[] {
  const found = forms(page);
  expect(found).toHaveLength(count);
  expect(page.match(/<form\b/g) ?? []).toHaveLength(count);
  for (const form of found) {
    expect(form.attributes).toMatch(/\smethod="post"/);
    expect(form.attributes).toMatch(/\saction="\/[^"]*"/);
    expect(form.content).toContain(`<input type="hidden" name="csrf" value="${csrfEscaped}">`);
  }
  return found;
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('base64');

const app = (n: number, over: Partial<ConnectedApp> = {}): ConnectedApp => ({
  grantId: `grant-${n}`,
  clientName: `App ${n}`,
  clientId: `client-${n}`,
  scopes: ['items:read', 'items:write'],
  lastUsed: '2026-03-01T10:00:00.000Z',
  grantedAt: '2026-02-01T09:00:00.000Z',
  ...over,
});

/** One page of each kind with ordinary values, for the checks every page must pass. */
function everyPage(): Record<string, string> {
  return {
    login: renderLoginPage({
      action: '/login',
      csrf: 'tok',
      clientName: 'Claude',
      username: 'ann',
      error: 'Wrong username or password.',
      signupHref: '/signup',
    }),
    signup: renderSignupPage({ action: '/signup', csrf: 'tok', loginHref: '/login', error: 'Taken.' }),
    consent: renderConsentPage({
      action: '/consent/allow',
      csrf: 'tok',
      username: 'ann',
      clientName: 'Claude',
      clientId: 'abc',
      redirectHost: 'claude.ai',
      scopes: [{ name: 'items:read', description: 'Read your items' }],
      newClient: true,
      denyAction: '/consent/deny',
    }),
    apps: renderAppsPage({
      username: 'ann',
      csrf: 'tok',
      revokeAction: '/apps/revoke',
      logoutAction: '/logout',
      apps: [app(1), app(2, { lastUsed: null, grantedAt: null, scopes: [] })],
      notice: 'Revoked.',
    }),
    appsEmpty: renderAppsPage({
      username: 'ann',
      csrf: 'tok',
      revokeAction: '/apps/revoke',
      logoutAction: '/logout',
      apps: [],
    }),
    error: renderErrorPage({ title: 'Oops', message: 'Something failed.', detail: 'req-1' }),
    errorBare: renderErrorPage({ title: 'Oops', message: 'Something failed.' }),
  };
}

describe('html tagged template', () => {
  it('escapes interpolated strings and numbers with escape-html', () => {
    expect(html`<p title="${`a"b'c`}">${'<b>&</b>'}${42}</p>`.value).toBe(
      '<p title="a&quot;b&#39;c">&lt;b&gt;&amp;&lt;/b&gt;42</p>',
    );
  });

  it('inserts SafeHtml as is, and does not escape an already rendered fragment twice', () => {
    const inner = html`<em>${'<x>'}</em>`;
    expect(inner).toBeInstanceOf(SafeHtml);
    expect(html`<p>${inner}</p>`.value).toBe('<p><em>&lt;x&gt;</em></p>');
    expect(html`${new SafeHtml('<br>')}`.value).toBe('<br>');
  });

  it('renders arrays element by element and null, undefined, false as nothing', () => {
    // prettier-ignore
    expect(html`<ul>${['<a>', html`<li>b</li>`]}</ul>`.value).toBe('<ul>&lt;a&gt;<li>b</li></ul>');
    expect(html`[${null}${undefined}${false}]`.value).toBe('[]');
  });

  it('refuses values it cannot render safely (plain objects, true)', () => {
    expect(() => html`${{ toString: () => '<script>' }}`).toThrow(
      /cannot interpolate a value of type object/,
    );
    expect(() => html`${true}`).toThrow(/type boolean/);
  });

  it('does not treat a look-alike object as SafeHtml', () => {
    expect(() => html`${{ value: '<script>' }}`).toThrow(TypeError);
  });
});

describe('PAGE_CSP and PAGE_STYLE', () => {
  it('is exactly the documented policy, allowing the stylesheet by its SHA-256 hash', () => {
    expect(PAGE_CSP).toBe(
      `default-src 'none'; style-src 'sha256-${sha256(PAGE_STYLE)}'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'`,
    );
    expect(PAGE_CSP).not.toMatch(/form-action|script-src|unsafe/);
  });

  it('every page embeds exactly one style element whose text hashes to the value in PAGE_CSP', () => {
    const cspHash = /style-src 'sha256-([A-Za-z0-9+/=]+)'/.exec(PAGE_CSP)?.[1];
    expect(cspHash).toBeDefined();
    for (const [name, page] of Object.entries(everyPage())) {
      const blocks = styleBlocks(page);
      expect(blocks, name).toHaveLength(1);
      expect(sha256(blocks[0] ?? ''), name).toBe(cspHash);
      expect(page.match(/<style/g), name).toHaveLength(1);
    }
  });

  it('the stylesheet cannot close its own element and loads nothing', () => {
    expect(PAGE_STYLE).not.toMatch(/<\/style|@import|url\(/i);
  });
});

describe('every page', () => {
  it('is a complete, safe, phone-readable document', () => {
    for (const [name, page] of Object.entries(everyPage())) {
      expect(page, name).toContain('<html lang="en">');
      expect(page, name).toContain('<meta charset="utf-8">');
      expect(page, name).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
      expect(page, name).toMatch(/<title>[^<]+ · mcp-pa<\/title>/);
      expect(page, name).toMatch(/<main[^>]*>[\s\S]*<h1>[\s\S]*<\/main>/);
      assertSafeMarkup(page);
    }
  });

  it('refuses link and form targets that are not same-origin paths, naming the field', () => {
    const bad = [
      'https://evil.example/login',
      'http://evil.example/login',
      '//evil.example/login',
      '/\\evil.example',
      '/\t/evil.example',
      'javascript:alert(1)',
      'login',
      '',
    ];
    for (const target of bad) {
      expect(() => renderLoginPage({ action: target, csrf: 't' })).toThrow(/^action must be a path/);
      expect(() => renderLoginPage({ action: '/l', csrf: 't', signupHref: target })).toThrow(/^signupHref/);
      expect(() => renderSignupPage({ action: '/s', csrf: 't', loginHref: target })).toThrow(/^loginHref/);
      const consent = {
        action: '/a',
        csrf: 't',
        username: 'u',
        clientName: 'c',
        clientId: 'i',
        redirectHost: 'h',
        scopes: [],
        denyAction: '/d',
      };
      expect(() => renderConsentPage({ ...consent, denyAction: target })).toThrow(/^denyAction/);
      const apps = { username: 'u', csrf: 't', revokeAction: '/r', logoutAction: '/o', apps: [] };
      expect(() => renderAppsPage({ ...apps, revokeAction: target })).toThrow(/^revokeAction/);
      expect(() => renderAppsPage({ ...apps, logoutAction: target })).toThrow(/^logoutAction/);
    }
  });
});

describe('escaping hostile values in every field', () => {
  const csrf = hostile('csrf');
  const csrfEscaped = hostileEscaped('csrf');

  it('login page', () => {
    const page = renderLoginPage({
      action: hostilePath('action'),
      csrf,
      clientName: hostile('clientName'),
      username: hostile('username'),
      error: hostile('error'),
      signupHref: hostilePath('signupHref'),
    });
    assertSafeMarkup(page);
    for (const f of ['clientName', 'username', 'error']) expect(page).toContain(hostileEscaped(f));
    for (const f of ['action', 'signupHref']) expect(page).toContain(hostilePathEscaped(f));
    assertFormsPostWithCsrf(page, csrfEscaped, 1);
  });

  it('sign-up page', () => {
    const page = renderSignupPage({
      action: hostilePath('action'),
      csrf,
      username: hostile('username'),
      error: hostile('error'),
      loginHref: hostilePath('loginHref'),
    });
    assertSafeMarkup(page);
    for (const f of ['username', 'error']) expect(page).toContain(hostileEscaped(f));
    for (const f of ['action', 'loginHref']) expect(page).toContain(hostilePathEscaped(f));
    assertFormsPostWithCsrf(page, csrfEscaped, 1);
  });

  it('consent page', () => {
    const page = renderConsentPage({
      action: hostilePath('action'),
      csrf,
      username: hostile('username'),
      clientName: hostile('clientName'),
      clientId: hostile('clientId'),
      redirectHost: hostile('redirectHost'),
      scopes: [
        { name: hostile('scope1'), description: hostile('desc1') },
        { name: hostile('scope2'), description: hostile('desc2') },
      ],
      newClient: true,
      denyAction: hostilePath('denyAction'),
    });
    assertSafeMarkup(page);
    for (const f of [
      'username',
      'clientName',
      'clientId',
      'redirectHost',
      'scope1',
      'desc1',
      'scope2',
      'desc2',
    ]) {
      expect(page).toContain(hostileEscaped(f));
    }
    for (const f of ['action', 'denyAction']) expect(page).toContain(hostilePathEscaped(f));
    assertFormsPostWithCsrf(page, csrfEscaped, 2);
  });

  it('connected apps page', () => {
    const apps = [1, 2].map((n) =>
      app(n, {
        grantId: hostile(`grantId${n}`),
        clientName: hostile(`clientName${n}`),
        clientId: hostile(`clientId${n}`),
        scopes: [hostile(`scopeA${n}`), hostile(`scopeB${n}`)],
        lastUsed: hostile(`lastUsed${n}`),
        grantedAt: hostile(`grantedAt${n}`),
      }),
    );
    const page = renderAppsPage({
      username: hostile('username'),
      csrf,
      revokeAction: hostilePath('revokeAction'),
      logoutAction: hostilePath('logoutAction'),
      apps,
      notice: hostile('notice'),
    });
    assertSafeMarkup(page);
    const fields = ['username', 'notice'];
    for (const n of [1, 2]) {
      for (const f of ['grantId', 'clientName', 'clientId', 'scopeA', 'scopeB', 'lastUsed', 'grantedAt']) {
        fields.push(`${f}${n}`);
      }
    }
    for (const f of fields) expect(page).toContain(hostileEscaped(f));
    for (const f of ['revokeAction', 'logoutAction']) expect(page).toContain(hostilePathEscaped(f));
    assertFormsPostWithCsrf(page, csrfEscaped, 3);
  });

  it('error page', () => {
    const page = renderErrorPage({
      title: hostile('title'),
      message: hostile('message'),
      detail: hostile('detail'),
    });
    assertSafeMarkup(page);
    for (const f of ['title', 'message', 'detail']) expect(page).toContain(hostileEscaped(f));
    expect(page).toContain(`<title>${hostileEscaped('title')} · mcp-pa</title>`);
    expect(forms(page)).toHaveLength(0);
  });
});

describe('login page', () => {
  it('asks for username and password, names the client, shows the error as an alert, links to sign-up', () => {
    const page = norm(
      renderLoginPage({
        action: '/interaction/abc/login',
        csrf: 'csrf-123',
        clientName: 'Claude',
        username: 'ann',
        error: 'Wrong username or password.',
        signupHref: '/signup?return=abc',
      }),
    );
    expect(page).toContain('<h1>Sign in to mcp-pa</h1>');
    expect(page).toMatch(/to continue to <strong>Claude<\/strong>/);
    expect(page).toMatch(
      /<input type="text" id="username" name="username" value="ann" autocomplete="username"/,
    );
    expect(page).toMatch(
      /<input type="password" id="password" name="password" autocomplete="current-password"/,
    );
    expect(page).toContain('<label for="username">Username</label>');
    expect(page).toContain('<label for="password">Password</label>');
    expect(page).toMatch(/<p [^>]*role="alert"[^>]*>Wrong username or password\.<\/p>/);
    expect(page).toContain('<a href="/signup?return=abc">');
    const [form] = assertFormsPostWithCsrf(page, 'csrf-123', 1);
    expect(form?.attributes).toContain('action="/interaction/abc/login"');
    expect(form?.content).toMatch(/<button type="submit">Sign in<\/button>/);
  });

  it('leaves out the client line, the alert and the sign-up link when not given', () => {
    const page = norm(renderLoginPage({ action: '/login', csrf: 't' }));
    expect(page).not.toContain('to continue to');
    expect(page).not.toContain('role="alert"');
    expect(page).not.toContain('<a ');
    expect(page).toContain('name="username" value=""');
  });
});

describe('sign-up page', () => {
  it('asks for a new username and password and links back to sign-in', () => {
    const page = norm(
      renderSignupPage({
        action: '/signup',
        csrf: 'csrf-9',
        username: 'bob',
        error: 'That username is taken.',
        loginHref: '/login',
      }),
    );
    expect(page).toMatch(/<h1>[^<]*account[^<]*<\/h1>/);
    expect(page).toMatch(/name="username" value="bob" autocomplete="username"/);
    expect(page).toMatch(/name="password" autocomplete="new-password"/);
    expect(page).toMatch(/role="alert"[^>]*>That username is taken\.</);
    expect(page).toContain('<a href="/login">Sign in</a>');
    assertFormsPostWithCsrf(page, 'csrf-9', 1);
    expect(renderSignupPage({ action: '/s', csrf: 't', loginHref: '/l' })).not.toContain('role="alert"');
  });
});

describe('consent page', () => {
  const base = {
    action: '/interaction/xyz/confirm',
    csrf: 'csrf-c',
    username: 'ann',
    clientName: 'Claude Desktop',
    clientId: 'dyn-7f3a',
    redirectHost: 'claude.ai',
    scopes: [
      { name: 'items:read', description: 'Read your projects, tasks and notes' },
      { name: 'items:write', description: 'Create and change them' },
    ],
    denyAction: '/interaction/xyz/abort',
  };

  it('names the client, its id, where the answer goes, each scope, and who is signed in', () => {
    const page = norm(renderConsentPage(base));
    expect(page).toContain('<h1>Claude Desktop wants to access your mcp-pa data</h1>');
    expect(page).toContain('<code>dyn-7f3a</code>');
    expect(page).toContain('It will be sent back to <strong>claude.ai</strong>');
    for (const s of base.scopes) {
      expect(page).toContain(`<code>${s.name}</code>`);
      expect(page).toContain(s.description);
    }
    expect(page.match(/<li>/g)).toHaveLength(2);
    expect(page).toContain('Signed in as <strong>ann</strong>');
    expect(page).not.toContain('registered recently');
  });

  it('has an Allow form posting to action and a Deny form posting to denyAction, both with the token', () => {
    const [allow, deny] = assertFormsPostWithCsrf(renderConsentPage(base), 'csrf-c', 2);
    expect(allow?.attributes).toContain('action="/interaction/xyz/confirm"');
    expect(allow?.content).toMatch(/<button type="submit"[^>]*>Allow<\/button>/);
    expect(deny?.attributes).toContain('action="/interaction/xyz/abort"');
    expect(deny?.content).toMatch(/<button type="submit"[^>]*>Deny<\/button>/);
  });

  it('warns about a client registered just now', () => {
    const page = norm(renderConsentPage({ ...base, newClient: true }));
    expect(page).toContain(
      'This application was registered recently. Only continue if you started this sign-in yourself.',
    );
  });

  it('says so when no scopes are asked for', () => {
    const page = norm(renderConsentPage({ ...base, scopes: [] }));
    expect(page).not.toContain('<ul');
    expect(page).toMatch(/no access beyond/);
  });
});

describe('connected apps page', () => {
  const base = {
    username: 'ann',
    csrf: 'csrf-a',
    revokeAction: '/apps/revoke',
    logoutAction: '/logout',
  };

  it('lists each app in a table row with one revoke form carrying its grant id', () => {
    const apps = [app(1), app(2, { lastUsed: null }), app(3, { grantedAt: null, scopes: [] })];
    const page = norm(renderAppsPage({ ...base, apps }));
    expect(page).toContain('<h1>Connected apps</h1>');
    expect(page).toContain('<table>');
    expect(page.match(/<tr> <th scope="row">/g)).toHaveLength(3);
    const found = assertFormsPostWithCsrf(page, 'csrf-a', 4);
    const revokes = found.filter((f) => f.attributes.includes('action="/apps/revoke"'));
    expect(revokes).toHaveLength(3);
    revokes.forEach((form, i) => {
      const grants = [...form.content.matchAll(/<input type="hidden" name="grant" value="([^"]*)">/g)];
      expect(grants.map((g) => g[1])).toEqual([`grant-${i + 1}`]);
      expect(form.content).toMatch(/<button type="submit"[^>]*>Revoke<\/button>/);
      expect(form.content).toContain(`aria-label="Revoke App ${i + 1}"`);
    });
    const rows = [...page.matchAll(/<tr> <th scope="row">([\s\S]*?)<\/tr>/g)].map((m) => m[1] ?? '');
    expect(rows[0]).toContain('App 1');
    expect(rows[0]).toContain('<code>client-1</code>');
    expect(rows[0]).toContain('<code>items:read</code>, <code>items:write</code>');
    expect(rows[0]).toContain('<time>2026-02-01T09:00:00.000Z</time>');
    expect(rows[0]).toContain('<time>2026-03-01T10:00:00.000Z</time>');
    expect(rows[1]).toMatch(/<td> ?<span class="muted">never<\/span> ?<\/td>/);
    expect(rows[2]).toMatch(/<td> ?<span class="muted">none<\/span> ?<\/td>/);
    expect(rows[2]).toMatch(/<td> ?<span class="muted">unknown<\/span> ?<\/td>/);
    expect(page).not.toContain('No apps are connected');
  });

  it('shows an empty state, still with a sign-out form', () => {
    const page = norm(renderAppsPage({ ...base, apps: [] }));
    expect(page).toContain('No apps are connected to your account.');
    expect(page).not.toContain('<table');
    const [logout] = assertFormsPostWithCsrf(page, 'csrf-a', 1);
    expect(logout?.attributes).toContain('action="/logout"');
    expect(logout?.content).toMatch(/<button type="submit"[^>]*>Sign out<\/button>/);
  });

  it('shows a notice as a status message, and none when not given', () => {
    expect(norm(renderAppsPage({ ...base, apps: [], notice: 'Access for App 1 was revoked.' }))).toMatch(
      /<p [^>]*role="status"[^>]*>Access for App 1 was revoked\.<\/p>/,
    );
    expect(renderAppsPage({ ...base, apps: [] })).not.toContain('role="status"');
  });
});

describe('error page', () => {
  it('shows the title, the message and the detail when given', () => {
    const page = norm(
      renderErrorPage({
        title: 'Sign-in expired',
        message: 'Start again.',
        detail: 'invalid_request',
      }),
    );
    expect(page).toContain('<title>Sign-in expired · mcp-pa</title>');
    expect(page).toContain('<h1>Sign-in expired</h1>');
    expect(page).toContain('<p>Start again.</p>');
    expect(page).toContain('<code>invalid_request</code>');
    expect(renderErrorPage({ title: 'T', message: 'M' })).not.toContain('<code>');
  });
});
