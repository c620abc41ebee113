/**
 * Small pieces the authorization pages share: cookies, form bodies, CSRF tokens and responses. Raw Node
 * requests and responses (the pages sit beside oidc-provider, which takes raw requests too).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PAGE_CSP } from './pages.js';

export const CSRF_COOKIE = '__Host-pa_csrf';
export const ACCOUNT_COOKIE = '__Host-pa_account';
const FORM_LIMIT = 16 * 1024;

export function parseCookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  const header = req.headers.cookie;
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 1) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (!out.has(name)) {
      try {
        out.set(name, decodeURIComponent(value));
      } catch {
        // not a cookie of ours
      }
    }
  }
  return out;
}

/** A `__Host-` cookie: Secure, HttpOnly, SameSite=Lax, Path=/, no Domain. */
export function hostCookie(name: string, value: string, maxAgeSeconds: number | null): string {
  return [
    `${name}=${encodeURIComponent(value)}`,
    'Path=/',
    'Secure',
    'HttpOnly',
    'SameSite=Lax',
    ...(maxAgeSeconds === null ? [] : [`Max-Age=${maxAgeSeconds}`]),
  ].join('; ');
}

export function appendSetCookie(res: ServerResponse, cookie: string): void {
  const prev = res.getHeader('set-cookie');
  const list = prev === undefined ? [] : Array.isArray(prev) ? prev : [String(prev)];
  res.setHeader('set-cookie', [...list, cookie]);
}

export class FormError extends Error {
  constructor(
    readonly status: 400 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The name of the first parameter whose name or value holds U+0000, or undefined. No database stores that
 * character as text (PostgreSQL refuses it even inside jsonb), so a request carrying it is refused up front.
 */
export function nulParameter(params: URLSearchParams): string | undefined {
  for (const [name, value] of params) {
    if (name.includes('\u0000') || value.includes('\u0000')) return JSON.stringify(name).slice(1, -1);
  }
  return undefined;
}

/** Reads an application/x-www-form-urlencoded body (at most 16 KiB). */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new FormError(415, 'forms must be sent as application/x-www-form-urlencoded');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > FORM_LIMIT) throw new FormError(413, `the form is larger than ${FORM_LIMIT} bytes`);
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * CSRF protection for the pages' forms: a random value in a `__Host-` cookie, and in each form an HMAC of that
 * value and the form's context (an interaction id, or "account"). A form from another browser, another
 * interaction or another site does not verify.
 */
export class Csrf {
  constructor(private readonly key: Buffer) {}

  /** The browser's CSRF cookie value, set on the response when it has none yet. */
  browserValue(req: IncomingMessage, res: ServerResponse): string {
    const existing = parseCookies(req).get(CSRF_COOKIE);
    if (existing && /^[A-Za-z0-9_-]{32,64}$/.test(existing)) return existing;
    const value = randomBytes(24).toString('base64url');
    appendSetCookie(res, hostCookie(CSRF_COOKIE, value, null));
    return value;
  }

  token(browserValue: string, context: string): string {
    return createHmac('sha256', this.key).update(`${browserValue}|${context}`).digest('base64url');
  }

  verify(req: IncomingMessage, form: URLSearchParams, context: string): boolean {
    const value = parseCookies(req).get(CSRF_COOKIE);
    const presented = form.get('csrf');
    if (!value || !presented) return false;
    const expected = Buffer.from(this.token(value, context));
    const given = Buffer.from(presented);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }
}

export function sendHtml(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('content-security-policy', PAGE_CSP);
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('cache-control', 'no-store');
  res.end(body);
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(JSON.stringify(body));
}

/** 303 See Other: the browser follows with a GET and never re-sends the form (RFC 9700 §4.12). */
export function seeOther(res: ServerResponse, location: string): void {
  res.statusCode = 303;
  res.setHeader('location', location);
  res.end();
}

/**
 * A POST from a page of another origin (when the browser says where it came from). `Origin: null` counts as
 * foreign unless the browser also sends `Sec-Fetch-Site: same-origin` (a header pages cannot set): under the pages'
 * `Referrer-Policy: no-referrer`, browsers send `Origin: null` with a form posted from the same origin too.
 */
export function crossOrigin(req: IncomingMessage, ownOrigin: string): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  if (origin === 'null') return req.headers['sec-fetch-site'] !== 'same-origin';
  return origin !== ownOrigin;
}
