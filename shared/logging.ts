/**
 * Structured logging with a correlation id on every line. Values that are or look like secrets are
 * redacted before anything reaches a sink: by key name (password, secret, token, key, authorization,
 * connection string, signature …) and by value shape (Bearer tokens, JWTs, SAS keys, connection strings,
 * our `atr_` API keys anywhere in a string, and `?code=` Functions keys in URLs).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogProps = Record<string, unknown>;

export interface Logger {
  debug(message: string, props?: LogProps): void;
  info(message: string, props?: LogProps): void;
  warn(message: string, props?: LogProps): void;
  error(message: string, props?: LogProps): void;
  child(props: LogProps): Logger;
}

/** Where a formatted record goes: the Functions InvocationContext, stdout, or a test's array. */
export type LogSink = (level: LogLevel, record: Record<string, unknown>) => void;

const levels: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const REDACTED = '[redacted]';

const secretKey =
  /pass(word)?|secret|token|authorization|api[-_]?key|functions-key|signature|sig$|credential|connectionstring|sharedaccess|privatekey|^key$|cookie|unicodepwd/i;

const secretValuePatterns: RegExp[] = [
  // Our API keys (`atr_<keyId>_<secret>`, shared/usecases/callers.ts), also malformed ones a caller sent.
  /\batr_[A-Za-z0-9]+_[A-Za-z0-9_-]+/g,
  // A credential, not prose: "the bearer token is not valid" stays readable.
  /\bBearer\s+[A-Za-z0-9\-._~+/]{16,}=*/gi,
  /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g, // JWT
  /(SharedAccessKey|AccountKey|SharedAccessSignature|sig|client_secret|password)=[^;&\s"]+/gi,
  // A Functions key sent as `?code=` (the Functions host convention) inside any logged URL.
  /([?&]code)=[^&#\s"]+/gi,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g,
];

export function redactString(value: string): string {
  let out = value;
  for (const pattern of secretValuePatterns) {
    out = out.replace(pattern, (match) => {
      const eq = match.indexOf('=');
      if (eq > 0 && !match.startsWith('eyJ') && !/^bearer/i.test(match))
        return `${match.slice(0, eq + 1)}${REDACTED}`;
      return REDACTED;
    });
  }
  return out;
}

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[depth]';
  if (typeof value === 'string') return redactString(value);
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return {
      name: value.name,
      message: redactString(value.message),
      ...(code === undefined ? {} : { code }),
    };
  }
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  if (value instanceof Date) return value.toISOString();
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      out[key] =
        secretKey.test(key) && item !== undefined && item !== null ? REDACTED : redact(item, depth + 1);
    }
    return out;
  }
  return value;
}

export function createLogger(sink: LogSink, options: { level?: LogLevel; props?: LogProps } = {}): Logger {
  const min = levels[options.level ?? 'info'];
  const base = options.props ?? {};
  const write =
    (level: LogLevel) =>
    (message: string, props?: LogProps): void => {
      if (levels[level] < min) return;
      const record = redact({ ...base, ...props }) as Record<string, unknown>;
      sink(level, { level, message: redactString(message), ...record });
    };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (props) => createLogger(sink, { level: options.level ?? 'info', props: { ...base, ...props } }),
  };
}

/** One JSON line per record on stdout/stderr: for the local host, the agent and scripts. */
export const consoleSink: LogSink = (level, record) => {
  const line = JSON.stringify({ time: new Date().toISOString(), ...record });
  if (level === 'error' || level === 'warn') process.stderr.write(`${line}\n`);
  else process.stdout.write(`${line}\n`);
};

/** Says nothing (a caller that gave no logger). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};
