/**
 * Every relative link in README.md, CONTRIBUTING.md and docs/**\/*.md points at a file that exists, and every
 * `#anchor` — on the same page or another — names a heading of that page as GitHub renders it (GitHub's slug rules:
 * the heading's text, lower-cased, punctuation removed, spaces turned into hyphens, `-1`, `-2`… for repeats).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/helpers.js';

function markdownFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...markdownFiles(full));
    else if (entry.name.endsWith('.md')) out.push(full);
  }
  return out.sort();
}

const PAGES = [
  path.join(ROOT, 'README.md'),
  path.join(ROOT, 'CONTRIBUTING.md'),
  ...markdownFiles(path.join(ROOT, 'docs')),
].filter((f) => existsSync(f));

/** Lines outside fenced code blocks, with their numbers. */
function proseLines(markdown: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  let fence: string | null = null;
  markdown.split('\n').forEach((text, i) => {
    const m = /^\s{0,3}(```+|~~~+)/.exec(text);
    if (m) {
      const marker = (m[1] as string).slice(0, 3);
      if (fence === null) fence = marker;
      else if (marker === fence) fence = null;
      return;
    }
    if (fence === null) out.push({ text, line: i + 1 });
  });
  return out;
}

/** GitHub's heading id (github-slugger): lower case, only letters, marks, numbers, `_`, `-` and spaces kept. */
function githubSlug(heading: string): string {
  const text = heading
    .replace(/`([^`]*)`/g, '$1')
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/\*\*([^*]+)\*\*/g, '$1')
    .replace(/(^|\W)\*([^*]+)\*(?=\W|$)/g, '$1$2')
    .trim();
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
    .replace(/ /g, '-');
}

const anchorCache = new Map<string, Set<string>>();

/** Every anchor a page offers: its headings' slugs (repeats numbered) and explicit `<a id>` / `<a name>`. */
function anchorsOf(file: string): Set<string> {
  let anchors = anchorCache.get(file);
  if (anchors !== undefined) return anchors;
  anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { text } of proseLines(readFileSync(file, 'utf8'))) {
    const heading = /^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(text);
    if (heading) {
      const base = githubSlug(heading[1] as string);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const m of text.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1] as string);
  }
  anchorCache.set(file, anchors);
  return anchors;
}

interface Link {
  readonly file: string;
  readonly line: number;
  readonly target: string;
}

/** Inline links and images (`[text](target)`), and reference definitions (`[label]: target`), outside code. */
function linksOf(file: string): Link[] {
  const links: Link[] = [];
  for (const { text, line } of proseLines(readFileSync(file, 'utf8'))) {
    const prose = text.replace(/(`+)[\s\S]*?\1/g, 'code');
    for (const m of prose.matchAll(/!?\[(?:[^\][]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      links.push({ file, line, target: m[1] as string });
    }
    const def = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/.exec(prose);
    if (def) links.push({ file, line, target: def[1] as string });
  }
  return links;
}

/** Why a relative link is broken, or null. Absolute URLs (any scheme) are not checked. */
function brokenReason(link: Link): string | null {
  const { target } = link;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) return null;
  const hash = target.indexOf('#');
  const rawPath = hash === -1 ? target : target.slice(0, hash);
  const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
  const filePart = decodeURIComponent(rawPath.split('?')[0] as string);
  const resolved =
    filePart === ''
      ? link.file
      : filePart.startsWith('/')
        ? path.join(ROOT, filePart)
        : path.resolve(path.dirname(link.file), filePart);
  if (!existsSync(resolved)) return `${path.relative(ROOT, resolved)} does not exist`;
  if (anchor === undefined || anchor === '') return null;
  if (statSync(resolved).isDirectory() || !resolved.endsWith('.md')) return null;
  if (!anchorsOf(resolved).has(anchor)) {
    return `${path.relative(ROOT, resolved)} has no heading with the anchor #${anchor}`;
  }
  return null;
}

describe('documentation links', () => {
  it('GitHub heading slugs are computed as GitHub does', () => {
    expect(githubSlug('5. Security settings')).toBe('5-security-settings');
    expect(githubSlug('Requests refused at `/mcp`')).toBe('requests-refused-at-mcp');
    expect(githubSlug('`invalid_grant`')).toBe('invalid_grant');
    expect(githubSlug('OAuth: signing in and getting tokens')).toBe('oauth-signing-in-and-getting-tokens');
    expect(githubSlug('Using Keycloak or another external issuer')).toBe(
      'using-keycloak-or-another-external-issuer',
    );
    expect(githubSlug('A — B')).toBe('a--b');
    expect(githubSlug('tls_client_auth and certificate-bound tokens')).toBe(
      'tls_client_auth-and-certificate-bound-tokens',
    );
  });

  it('finds the pages and their links', () => {
    expect(PAGES.length).toBeGreaterThanOrEqual(20);
    const all = PAGES.flatMap(linksOf);
    expect(all.filter((l) => !/^[a-z]+:/i.test(l.target)).length).toBeGreaterThan(100);
    expect(all.some((l) => l.target.includes('#'))).toBe(true);
  });

  it('a broken link or anchor is reported', () => {
    const page = path.join(ROOT, 'docs/architecture.md');
    expect(brokenReason({ file: page, line: 1, target: 'no-such-page.md' })).toMatch(/does not exist/);
    expect(brokenReason({ file: page, line: 1, target: 'oauth.md#no-such-heading' })).toMatch(/no heading/);
    expect(brokenReason({ file: page, line: 1, target: '#layer-rules' })).toBeNull();
    expect(brokenReason({ file: page, line: 1, target: 'https://example.com/x#y' })).toBeNull();
  });

  it.each(PAGES.map((p) => [path.relative(ROOT, p), p] as const))(
    'every relative link and anchor in %s resolves',
    (_name, page) => {
      const broken = linksOf(page).flatMap((link) => {
        const reason = brokenReason(link);
        return reason === null ? [] : [`line ${link.line}: (${link.target}) → ${reason}`];
      });
      expect(broken).toEqual([]);
    },
  );
});
