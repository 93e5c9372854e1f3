import { InvalidArgumentError } from '@nydus-ts/core';

const sizeUnits: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/**
 * Parses a byte size: decimal or 0x-hex, with an optional binary suffix (KiB, MiB, GiB; K/KB/M/MB
 * are read as binary too, as nydusify does). `flag` names the option in the error.
 */
export function parseByteSize(value: string, flag: string): number {
  const m = /^\s*(0x[0-9a-f]+|\d+)\s*([a-z]*)\s*$/i.exec(value);
  const unit = m ? sizeUnits[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new InvalidArgumentError(`${flag}: invalid size "${value}" (expected e.g. 1048576, 0x100000, 512KiB or 4MiB)`);
  }
  const n = Number(m[1]) * unit;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${flag}: size "${value}" is too large`);
  return n;
}

export function parsePositiveInt(value: string, flag: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError(`${flag}: expected a positive integer, got "${value}"`);
  }
  return Number(value);
}

export function parseChoice<T extends string>(value: string, flag: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`${flag}: "${value}" is not one of ${choices.join(', ')}`);
  }
  return value as T;
}

const durationUnits: Record<string, number> = { '': 1000, ms: 1, s: 1000, m: 60_000 };

/**
 * Parses a duration into whole milliseconds: a number of seconds (`30`, `1.5`) or with a unit
 * (`500ms`, `20s`, `2m`). Must be positive. `flag` names the option in the error.
 */
export function parseDuration(value: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/i.exec(value);
  if (!m) throw new InvalidArgumentError(`${flag}: invalid duration "${value}" (expected seconds, or e.g. 500ms, 20s, 2m)`);
  const ms = Math.round(Number(m[1]) * durationUnits[(m[2] ?? '').toLowerCase()]!);
  if (!Number.isSafeInteger(ms) || ms < 1) throw new InvalidArgumentError(`${flag}: duration "${value}" must be at least 1 ms`);
  return ms;
}
