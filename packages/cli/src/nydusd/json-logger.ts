import type { LogFields, LogLevel, Logger } from '@nydus-ts/core';

const rank: Record<LogLevel, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };

export interface JsonLoggerOptions {
  level: LogLevel;
  write: (line: string) => void;
}

/**
 * Structured logs for the daemon: one JSON object per line (`time`, `level`, `msg`, fields), at
 * a level that `setLevel` changes at run time (nydusd's `PUT /api/v1/daemon {"log_level"}`).
 */
export function createJsonLogger(options: JsonLoggerOptions): Logger & { setLevel(level: LogLevel): void } {
  const state = { min: rank[options.level] };
  const make = (base: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
      if (rank[level] < state.min) return;
      options.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields }));
    };
    return {
      trace: (m, f) => emit('trace', m, f),
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return Object.assign(make({}), { setLevel: (level: LogLevel) => (state.min = rank[level]) });
}
