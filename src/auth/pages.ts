/**
 * The server-rendered pages of the OAuth authorization server: sign-in, sign-up, consent, connected apps and
 * errors. Pure rendering — no HTTP here; the routes decide status codes and headers (send `PAGE_CSP` as the
 * Content-Security-Policy with every page).
 *
 * The pages load nothing from anywhere: no scripts, no external stylesheets, fonts or images, no event-handler
 * attributes, no `style=` attributes. One small stylesheet is embedded in a `<style>` element whose text is
 * exactly `PAGE_STYLE`, which the CSP allows by its SHA-256 hash. Everything works without JavaScript; forms
 * POST and carry a hidden `csrf` input.
 *
 * Every dynamic value goes through the `html` tagged template, which escapes it with `escape-html` unless it is
 * an already-rendered `SafeHtml`. Link and form targets must be same-origin paths (`/...`); anything else is
 * refused with a RangeError naming the field, so a page can never post a password to, or link to, another origin.
 *
 * Form field names the handlers read:
 * - sign-in and sign-up: `username`, `password`, `csrf`
 * - consent (allow and deny): `csrf`
 * - connected apps, revoke: `grant` (the grant id), `csrf`; sign out: `csrf`
 */
import { createHash } from 'node:crypto';
import escapeHtml from 'escape-html';

/** Markup that is already rendered and escaped; `html` inserts it as is. */
export class SafeHtml {
  constructor(readonly value: string) {}
}

function renderValue(value: unknown): string {
  if (value instanceof SafeHtml) return value.value;
  if (typeof value === 'string') return escapeHtml(value);
  if (typeof value === 'number' || typeof value === 'bigint') return escapeHtml(String(value));
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return value.map(renderValue).join('');
  throw new TypeError(
    `html: cannot interpolate a value of type ${typeof value}; allowed are strings, numbers, SafeHtml, arrays of these, and null/undefined/false (rendered as nothing)`,
  );
}

/**
 * The tagged template for markup: the literal parts are kept as written, every interpolated value is escaped
 * (escape-html) unless it is a SafeHtml. Arrays are rendered element by element; null, undefined and false render
 * as nothing (for `${cond && html`...`}`).
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) {
    out += renderValue(values[i]) + (strings[i + 1] ?? '');
  }
  return new SafeHtml(out);
}

/** The one stylesheet of every page, embedded verbatim; `PAGE_CSP` allows it by hash. */
export const PAGE_STYLE = `
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#fff;--muted:#57606a;--line:#d0d7de;--accent:#0b57d0;--accent-fg:#fff;--err:#b3261e;--warn-bg:#fff4e5;--ok-bg:#e8f5e9}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9da7b3;--line:#3d444d;--accent:#8ab4f8;--accent-fg:#0d1117;--err:#ffb4ab;--warn-bg:#3b2a10;--ok-bg:#12301a}}
*{box-sizing:border-box}
body{margin:0;font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:34rem;margin:0 auto;padding:2rem 1rem}
main.wide{max-width:60rem}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}
a{color:var(--accent)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;overflow-wrap:anywhere}
.muted{color:var(--muted)}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input[type=text],input[type=password]{width:100%;padding:.6rem;font:inherit;color:inherit;background:transparent;border:1px solid var(--line);border-radius:6px}
button{font:inherit;padding:.6rem 1.2rem;border-radius:6px;border:1px solid var(--accent);background:var(--accent);color:var(--accent-fg);cursor:pointer}
button.secondary{background:transparent;color:var(--fg);border-color:var(--line)}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
form.stack button{margin-top:1.25rem;width:100%}
.actions{display:flex;gap:.75rem;flex-wrap:wrap;margin-top:1.5rem}
.actions form{flex:1 1 8rem}
.actions button{width:100%}
.error,.notice,.caution{padding:.75rem 1rem;border-radius:6px;border-left:4px solid}
.error{color:var(--err);border-color:var(--err)}
.caution{background:var(--warn-bg);border-color:#e8a33d}
.notice{background:var(--ok-bg);border-color:#2e7d32}
ul.scopes{padding-left:1.25rem}
ul.scopes li{margin:.4rem 0}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%}
caption{text-align:left;font-weight:600;padding-bottom:.5rem}
th,td{text-align:left;vertical-align:top;padding:.5rem;border-bottom:1px solid var(--line)}
td form{margin:0}
td button{padding:.3rem .8rem}
footer{margin-top:2rem;padding-top:1rem;border-top:1px solid var(--line)}
`;

const STYLE_HASH = createHash('sha256').update(PAGE_STYLE, 'utf8').digest('base64');

/**
 * The page Content-Security-Policy: default-src 'none'; style-src 'sha256-<hash of PAGE_STYLE>'; img-src 'self';
 * base-uri 'none'; frame-ancestors 'none'. form-action is deliberately absent: browsers apply it to the redirect
 * that follows the consent POST, and that redirect goes to the client's own origin.
 */
export const PAGE_CSP = `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'`;

/** A link or form target: a path on this origin (`/...`), never another origin or a `javascript:` URL. */
function localPath(field: string, value: string): string {
  if (!value.startsWith('/') || value.startsWith('//') || /[\\\s\p{Cc}]/u.test(value)) {
    throw new RangeError(
      `${field} must be a path on this server starting with a single "/" (no scheme, host, backslash, whitespace or control characters)`,
    );
  }
  return value;
}

function csrfInput(csrf: string): SafeHtml {
  return html`<input type="hidden" name="csrf" value="${csrf}" />`;
}

function layout(title: string, body: SafeHtml, opts: { wide?: boolean } = {}): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>${title} · mcp-pa</title>
<style>${new SafeHtml(PAGE_STYLE)}</style>
</head>
<body>
<main${opts.wide === true ? new SafeHtml(' class="wide"') : ''}>
${body}
</main>
</body>
</html>
`.value;
}

function errorAlert(error: string | undefined): SafeHtml | undefined {
  return error === undefined || error === ''
    ? undefined
    : html`<p class="error" role="alert" id="form-error">${error}</p>`;
}

/** The username and password form of the sign-in and sign-up pages. */
function credentialsForm(
  action: string,
  csrf: string,
  username: string | undefined,
  hasError: boolean,
  passwordAutocomplete: 'current-password' | 'new-password',
  submit: string,
): SafeHtml {
  return html`<form
    class="stack"
    method="post"
    action="${action}"
    ${hasError ? new SafeHtml(' aria-describedby="form-error"') : ''}
  >
    ${csrfInput(csrf)}
    <label for="username">Username</label>
    <input
      type="text"
      id="username"
      name="username"
      value="${username ?? ''}"
      autocomplete="username"
      autocapitalize="none"
      spellcheck="false"
      required
    />
    <label for="password">Password</label>
    <input type="password" id="password" name="password" autocomplete="${passwordAutocomplete}" required />
    <button type="submit">${submit}</button>
  </form>`;
}

/** The sign-in page (username + password), optionally naming the client the user is signing in for. */
export function renderLoginPage(v: {
  action: string;
  csrf: string;
  clientName?: string | undefined;
  username?: string | undefined;
  error?: string | undefined;
  signupHref?: string | undefined;
}): string {
  const action = localPath('action', v.action);
  const signupHref = v.signupHref === undefined ? undefined : localPath('signupHref', v.signupHref);
  const hasError = v.error !== undefined && v.error !== '';
  return layout(
    'Sign in',
    html`<h1>Sign in to mcp-pa</h1>
      ${v.clientName !== undefined && v.clientName !== '' && html`<p class="muted">to continue to <strong>${v.clientName}</strong></p>`}
      ${errorAlert(v.error)}
      ${credentialsForm(action, v.csrf, v.username, hasError, 'current-password', 'Sign in')}
      ${signupHref !== undefined && html`<p>No account yet? <a href="${signupHref}">Create an account</a></p>`}`,
  );
}

/** The sign-up page: choose a username and a password. */
export function renderSignupPage(v: {
  action: string;
  csrf: string;
  username?: string;
  error?: string;
  loginHref: string;
}): string {
  const action = localPath('action', v.action);
  const loginHref = localPath('loginHref', v.loginHref);
  const hasError = v.error !== undefined && v.error !== '';
  return layout(
    'Create an account',
    html`<h1>Create an mcp-pa account</h1>
      ${errorAlert(v.error)}
      ${credentialsForm(action, v.csrf, v.username, hasError, 'new-password', 'Create account')}
      <p>Already have an account? <a href="${loginHref}">Sign in</a></p>`,
  );
}

/** One permission on the consent page. */
export interface ScopeView {
  readonly name: string;
  readonly description: string;
}

/** The consent page: a client asks for access; Allow posts to `action`, Deny to `denyAction`. */
export function renderConsentPage(v: {
  action: string;
  csrf: string;
  username: string;
  clientName: string;
  clientId: string;
  redirectHost: string;
  scopes: readonly ScopeView[];
  /** a client first seen now, e.g. registered dynamically minutes ago: show a caution line */
  newClient?: boolean;
  denyAction: string;
}): string {
  const action = localPath('action', v.action);
  const denyAction = localPath('denyAction', v.denyAction);
  const scopes =
    v.scopes.length === 0
      ? html`<p>It asks for no access beyond knowing that you signed in.</p>`
      : html`<p>If you allow it, <strong>${v.clientName}</strong> will be able to:</p>
          <ul class="scopes">
            ${v.scopes.map((s) => html`<li><code>${s.name}</code> — ${s.description}</li> `)}
          </ul>`;
  return layout(
    'Allow access?',
    html`<h1>${v.clientName} wants to access your mcp-pa data</h1>
      <p>
        Application <strong>${v.clientName}</strong>, client ID <code>${v.clientId}</code>. It will be sent
        back to <strong>${v.redirectHost}</strong>.
      </p>
      ${v.newClient === true && html`<p class="caution"><strong>Caution:</strong> This application was registered recently. Only continue if you started this sign-in yourself.</p>`}
      ${scopes}
      <p class="muted">Signed in as <strong>${v.username}</strong>.</p>
      <div class="actions">
        <form method="post" action="${action}">
          ${csrfInput(v.csrf)}
          <button type="submit">Allow</button>
        </form>
        <form method="post" action="${denyAction}">
          ${csrfInput(v.csrf)}
          <button type="submit" class="secondary">Deny</button>
        </form>
      </div>`,
  );
}

/** One client the user has granted access to, for the connected-apps page. */
export interface ConnectedApp {
  readonly grantId: string;
  readonly clientName: string;
  readonly clientId: string;
  readonly scopes: readonly string[];
  readonly lastUsed: string | null;
  readonly grantedAt: string | null;
}

function dateCell(value: string | null, missing: string): SafeHtml {
  return value === null ? html`<span class="muted">${missing}</span>` : html`<time>${value}</time>`;
}

/** The connected-apps page: the user's grants, each with a Revoke form, and a sign-out form. */
export function renderAppsPage(v: {
  username: string;
  csrf: string;
  revokeAction: string;
  logoutAction: string;
  apps: readonly ConnectedApp[];
  notice?: string | undefined;
}): string {
  const revokeAction = localPath('revokeAction', v.revokeAction);
  const logoutAction = localPath('logoutAction', v.logoutAction);
  const rows = v.apps.map(
    (app) =>
      html`<tr>
        <th scope="row">${app.clientName}</th>
        <td><code>${app.clientId}</code></td>
        <td>
          ${app.scopes.length === 0 ? html`<span class="muted">none</span>` : app.scopes.map((s, i) => html`${i > 0 && ', '}<code>${s}</code>`)}
        </td>
        <td>${dateCell(app.grantedAt, 'unknown')}</td>
        <td>${dateCell(app.lastUsed, 'never')}</td>
        <td>
          <form method="post" action="${revokeAction}">
            ${csrfInput(v.csrf)}
            <input type="hidden" name="grant" value="${app.grantId}" />
            <button type="submit" class="secondary" aria-label="Revoke ${app.clientName}">Revoke</button>
          </form>
        </td>
      </tr> `,
  );
  const list =
    v.apps.length === 0
      ? html`<p class="empty">
          No apps are connected to your account. Apps appear here after you allow them access.
        </p>`
      : html`<div class="table-wrap">
          <table>
            <caption>
              Apps with access to your mcp-pa data
            </caption>
            <thead>
              <tr>
                <th scope="col">App</th>
                <th scope="col">Client ID</th>
                <th scope="col">Access</th>
                <th scope="col">Granted</th>
                <th scope="col">Last used</th>
                <th scope="col"><span class="muted">Action</span></th>
              </tr>
            </thead>
            <tbody>
              ${rows}
            </tbody>
          </table>
        </div>`;
  return layout(
    'Connected apps',
    html`<h1>Connected apps</h1>
      ${v.notice !== undefined && v.notice !== '' && html`<p class="notice" role="status">${v.notice}</p>`}
      <p class="muted">
        Signed in as <strong>${v.username}</strong>. Revoking an app ends its access at once; it has to ask
        you again to get it back.
      </p>
      ${list}
      <footer>
        <form method="post" action="${logoutAction}">
          ${csrfInput(v.csrf)}
          <button type="submit" class="secondary">Sign out</button>
        </form>
      </footer>`,
    { wide: true },
  );
}

/** An error page: title, message and an optional detail (an error code, a request id). */
export function renderErrorPage(v: { title: string; message: string; detail?: string | undefined }): string {
  return layout(
    v.title,
    html`<h1>${v.title}</h1>
      <p>${v.message}</p>
      ${v.detail !== undefined && v.detail !== '' && html`<p class="muted">Detail: <code>${v.detail}</code></p>`}`,
  );
}

/**
 * Shown instead of an automatic error redirect to a client the operator did not register (dynamic or URL
 * client ids) while nobody is signed in (RFC 9700 §4.11.2): the person sees where they would be sent and
 * decides. `location` is the client's own registered redirect URI with the error parameters.
 */
export function renderRedirectNotice(v: {
  clientName: string;
  host: string;
  location: string;
  error: string;
  description?: string | undefined;
}): string {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(v.location) || /^(javascript|data|vbscript|file):/i.test(v.location)) {
    throw new RangeError('location must be an absolute URI with a safe scheme');
  }
  return layout(
    'This request cannot be completed',
    html`<h1>This request cannot be completed</h1>
      <p>
        ${v.clientName} sent a request this server cannot
        accept${v.description ? html`: ${v.description}` : ''}.
      </p>
      <p class="muted">Detail: <code>${v.error}</code></p>
      <p>If you started this yourself, you can return to the application at <strong>${v.host}</strong>.</p>
      <p><a href="${v.location}">Return to ${v.host}</a></p>`,
  );
}
