import { Option } from 'commander';

/**
 * The log of a long-running command (`kumo ha run`, `kumo monitor run`) for a service manager:
 * a time-stamped line of text, or with `--log-format json` one JSON object a line (time, level,
 * component, msg and the fields of the event), which journald, a file or a log shipper take
 * as they are. `kumo serve` logs JSON lines through Fastify's logger the same way.
 */
export type LogFormat = 'text' | 'json';
export type Level = 'info' | 'warn' | 'error';

export interface LineLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const logFormatOption = (): Option =>
  new Option('--log-format <format>', 'text lines, or one JSON object a line (time, level, component, msg) for a log collector').choices(['text', 'json']).default('text');

/** Warnings and errors go to stderr, the rest to stdout (as the text lines did before). */
export function lineLog(component: string, format: LogFormat): LineLog {
  const write = (level: Level, msg: string, fields: Record<string, unknown> = {}) => {
    const time = new Date().toISOString();
    const line = format === 'json'
      ? JSON.stringify({ time, level, component, msg, ...fields })
      : `${time} ${level === 'info' ? '' : `${level}: `}${msg}`;
    (level === 'info' ? process.stdout : process.stderr).write(`${line}\n`);
  };
  return {
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
  };
}
