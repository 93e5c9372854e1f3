/**
 * containerd's filter expressions (filters/parser.go) for snapshots: `field`, `field==v`,
 * `field!=v`, `field~=regexp`, selectors joined by `,` (and), several filters or-ed. Fields:
 * `name`, `parent`, `kind`, `labels.<key>` (quoted keys: `labels."containerd.io/snapshot.ref"`).
 * containerd re-checks what it asks for, but our own callers (tests, tools) rely on these.
 */
import { InvalidArgumentError } from '@nydus-ts/core';
import type { SnapshotInfo } from './types.js';

type Operator = '==' | '!=' | '~=' | 'present';

interface Selector {
  path: string[];
  op: Operator;
  value: string;
}

export type SnapshotFilter = (info: SnapshotInfo) => boolean;

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  peek(n = 1): string {
    return this.text.slice(this.pos, this.pos + n);
  }

  fail(what: string): never {
    throw new InvalidArgumentError(`filter ${JSON.stringify(this.text)}: ${what} at offset ${this.pos}`);
  }

  quoted(): string {
    const quote = this.text[this.pos]!;
    this.pos++;
    let out = '';
    while (!this.done && this.text[this.pos] !== quote) {
      let ch = this.text[this.pos]!;
      if (ch === '\\' && quote === '"') {
        this.pos++;
        const esc = this.text[this.pos];
        if (esc === undefined) this.fail('unterminated escape');
        ch = ({ n: '\n', t: '\t', r: '\r' } as Record<string, string>)[esc] ?? esc;
      }
      out += ch;
      this.pos++;
    }
    if (this.done) this.fail('unterminated quoted string');
    this.pos++;
    return out;
  }

  field(): string {
    if (this.peek() === '"' || this.peek() === '`') return this.quoted();
    const m = /^[A-Za-z0-9_-]+/.exec(this.text.slice(this.pos));
    if (!m) this.fail('expected a field name');
    this.pos += m[0].length;
    return m[0];
  }

  value(): string {
    if (this.peek() === '"' || this.peek() === '`' || this.peek() === '/') return this.quoted();
    const m = /^[^,]*/.exec(this.text.slice(this.pos))!;
    this.pos += m[0].length;
    return m[0];
  }
}

function parseFilter(text: string): Selector[] {
  const s = new Scanner(text.trim());
  const selectors: Selector[] = [];
  while (!s.done) {
    const path = [s.field()];
    while (s.peek() === '.') {
      s.pos++;
      path.push(s.field());
    }
    let op: Operator = 'present';
    let value = '';
    const two = s.peek(2);
    if (two === '==' || two === '!=' || two === '~=') {
      op = two;
      s.pos += 2;
      value = s.value();
    }
    selectors.push({ path, op, value });
    if (s.done) break;
    if (s.peek() !== ',') s.fail('expected "," between selectors');
    s.pos++;
  }
  if (selectors.length === 0) s.fail('empty filter');
  return selectors;
}

function fieldOf(info: SnapshotInfo, path: string[]): string | undefined {
  const [head, ...rest] = path;
  switch (head) {
    case 'name':
      return rest.length === 0 ? info.name : undefined;
    case 'parent':
      return rest.length === 0 ? info.parent : undefined;
    case 'kind':
      return rest.length === 0 ? info.kind.toLowerCase() : undefined;
    case 'labels':
      return info.labels[rest.join('.')];
    default:
      return undefined;
  }
}

function matches(sel: Selector, info: SnapshotInfo): boolean {
  const v = fieldOf(info, sel.path);
  switch (sel.op) {
    case 'present':
      return v !== undefined;
    case '==':
      return v === sel.value || (sel.path[0] === 'kind' && v === sel.value.toLowerCase());
    case '!=':
      return v !== sel.value;
    case '~=':
      return v !== undefined && new RegExp(sel.value).test(v);
  }
}

/** One predicate for a list of filters (any may match); no filters match everything. */
export function parseSnapshotFilters(filters: readonly string[]): SnapshotFilter {
  const parsed = filters.filter((f) => f.trim() !== '').map(parseFilter);
  for (const sels of parsed) {
    for (const sel of sels) {
      if (sel.op === '~=') {
        try {
          new RegExp(sel.value);
        } catch (err) {
          throw new InvalidArgumentError(`filter: invalid regular expression ${JSON.stringify(sel.value)}`, { cause: err });
        }
      }
    }
  }
  if (parsed.length === 0) return () => true;
  return (info) => parsed.some((sels) => sels.every((sel) => matches(sel, info)));
}
