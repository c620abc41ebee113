/**
 * docs/troubleshooting.md quotes the messages users and operators meet. The page designates them (its second
 * paragraph says how): a blockquote line made of a code span, optionally labelled "From oidc-provider:" or "From the
 * MCP SDK:", and the first column of a table headed "message". Every one must still be printed by the code:
 * mcp-pa's own messages are looked up in src/, the libraries' in their installed sources. `<…>` and `…` stand for the
 * part that varies. A message renamed in the code fails this test until the page follows.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/helpers.js';

const PAGE = path.join(ROOT, 'docs/troubleshooting.md');

type Origin = 'src' | 'oidc-provider' | 'mcp-sdk';

const ORIGINS: Record<Origin, { dir: string; ext: string }> = {
  src: { dir: path.join(ROOT, 'src'), ext: '.ts' },
  'oidc-provider': { dir: path.join(ROOT, 'node_modules/oidc-provider/lib'), ext: '.js' },
  'mcp-sdk': { dir: path.join(ROOT, 'node_modules/@modelcontextprotocol/sdk/dist/esm'), ext: '.js' },
};

interface Quoted {
  readonly message: string;
  readonly origin: Origin;
  readonly line: number;
}

function codeSpans(text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
}

/** The messages the page designates, with where each must be found. */
function quotedMessages(markdown: string): Quoted[] {
  const lines = markdown.split('\n');
  const out: Quoted[] = [];
  let fenced = false;
  let messageTable = false;
  lines.forEach((line, index) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return;
    }
    if (fenced) return;
    const quote = /^>\s?(.*)$/.exec(line);
    if (quote) {
      const text = quote[1] as string;
      const label = text.split('`')[0] ?? '';
      if (!text.includes('`')) return;
      const origin: Origin = /oidc-provider/i.test(label)
        ? 'oidc-provider'
        : /MCP SDK/i.test(label)
          ? 'mcp-sdk'
          : 'src';
      if (origin === 'src' && label.trim() !== '') {
        throw new Error(`line ${index + 1}: a quoted message must start with the message or a known label`);
      }
      for (const message of codeSpans(text)) out.push({ message, origin, line: index + 1 });
      return;
    }
    if (!line.startsWith('|')) {
      messageTable = false;
      return;
    }
    const cells = line.split('|').slice(1, -1);
    const first = (cells[0] ?? '').trim();
    if (first.toLowerCase() === 'message') {
      messageTable = true;
      return;
    }
    if (!messageTable || /^:?-+:?$/.test(first)) return;
    for (const message of codeSpans(first)) out.push({ message, origin: 'src', line: index + 1 });
  });
  return out;
}

function files(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...files(full, ext));
    else if (entry.name.endsWith(ext) && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

/**
 * Source text as the messages read: adjacent string literals joined ('a ' + 'b', `a ` + 'b'), escaped quotes
 * unescaped. Interpolations (`${host}`) stay, and the page's placeholders match them.
 */
function normalise(text: string): string {
  return text.replace(/(['"`])\s*\+\s*(['"`])/g, '').replace(/\\(['"`])/g, '$1');
}

const PLACEHOLDER = /<[^<>\n]+>|…/;

/** The message as a pattern: its literal parts in order, each placeholder any text of at most 300 characters. */
function messagePattern(message: string): { pattern: RegExp; literal: number } {
  const parts = message.split(new RegExp(PLACEHOLDER.source, 'g'));
  while (parts.length > 1 && parts[0] === '') parts.shift();
  while (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  const literal = parts.reduce((n, p) => n + p.length, 0);
  const escaped = parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return { pattern: new RegExp(escaped.join('[\\s\\S]{0,300}?')), literal };
}

const corpora = new Map<Origin, string[]>();
function corpus(origin: Origin): string[] {
  let texts = corpora.get(origin);
  if (texts === undefined) {
    const { dir, ext } = ORIGINS[origin];
    texts = files(dir, ext).map((f) => normalise(readFileSync(f, 'utf8')));
    corpora.set(origin, texts);
  }
  return texts;
}

function found(message: string, origin: Origin): boolean {
  const { pattern } = messagePattern(message);
  return corpus(origin).some((text) => pattern.test(text));
}

describe('docs/troubleshooting.md quotes messages the code really prints', () => {
  const page = readFileSync(PAGE, 'utf8');
  const quoted = quotedMessages(page);

  it('designates messages the way its introduction says', () => {
    expect(page).toMatch(/test\/docs\/troubleshooting\.test\.ts/);
    expect(quoted.length).toBeGreaterThanOrEqual(80);
    expect(quoted.filter((q) => q.origin === 'oidc-provider').length).toBeGreaterThanOrEqual(5);
    expect(quoted.filter((q) => q.origin === 'mcp-sdk').length).toBeGreaterThanOrEqual(2);
  });

  it('every quoted message is specific enough to be looked up', () => {
    const vague = quoted.filter((q) => {
      const { literal } = messagePattern(q.message);
      const longest = Math.max(...q.message.split(new RegExp(PLACEHOLDER.source, 'g')).map((p) => p.length));
      return literal < 8 || longest < 5;
    });
    expect(vague.map((q) => `line ${q.line}: ${q.message}`)).toEqual([]);
  });

  it('every quoted message occurs in the code that prints it', () => {
    const missing = quoted.filter((q) => !found(q.message, q.origin));
    expect(missing.map((q) => `line ${q.line} (${q.origin}): ${q.message}`)).toEqual([]);
  });

  it('the lookup fails for a message the code does not print', () => {
    // The same shapes as real messages, with the fixed words changed: these must not be found.
    expect(found('cannot listen on <address>: the port is wide open', 'src')).toBe(false);
    expect(found('Forbidden: Origin <origin> is welcome', 'src')).toBe(false);
    expect(found('grant request is perfectly valid', 'oidc-provider')).toBe(false);
    // And the real ones are, placeholders and joined literals included.
    expect(found('cannot listen on <address>: the port is already in use (another mcp-pa?)', 'src')).toBe(
      true,
    );
    expect(
      found(
        'the database was created by a newer mcp-pa (schema <n>, this version knows <m>); upgrade mcp-pa',
        'src',
      ),
    ).toBe(true);
  });

  it('mentions mcp-pa config check and mcp-pa doctor', () => {
    expect(page).toMatch(/mcp-pa config check/);
    expect(page).toMatch(/mcp-pa doctor/);
  });
});
