/**
 * Request loggers made only when something is logged. Fastify gives every request a child
 * of the server's pino logger bound to its request id, and Silo adds the tenant
 * (`setBindings`); with Silo's redaction paths the two cost ~6 µs per request here (pino
 * serializes the bindings at once), while at the usual levels (`info` and up, with request
 * logging at `info`) most requests log nothing at all. {@link lazyChildLoggerFactory}
 * (Fastify's `childLoggerFactory` option) returns a {@link LazyRequestLogger} instead: the
 * same methods, checking the level first and building the real child, with every binding
 * given so far, on the first line that is written. What is logged is the same
 * (test/request-logging.test.ts checks the lines, their request id and tenant).
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, Level, LevelWithSilent, Logger } from 'pino';

type LogFn = FastifyBaseLogger['info'];

/** A pino-compatible request logger whose pino child is built on the first enabled call. */
export class LazyRequestLogger {
  private real: Logger | undefined;
  private extra: Bindings | undefined;
  private ownLevel: string | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly bindingsGiven: Bindings,
    private readonly opts: ChildLoggerOptions,
  ) {
    this.ownLevel = opts.level;
  }

  /** The pino child, built once (with the bindings added by {@link setBindings} meanwhile). */
  private logger(): Logger {
    if (!this.real) {
      this.real = this.parent.child(this.bindingsGiven, this.opts);
      if (this.extra) this.real.setBindings(this.extra);
      if (this.ownLevel !== undefined) this.real.level = this.ownLevel;
    }
    return this.real;
  }

  get level(): string {
    return this.real?.level ?? this.ownLevel ?? this.parent.level;
  }

  set level(level: string) {
    this.ownLevel = level;
    if (this.real) this.real.level = level;
  }

  /** Whether a line at `level` would be written (pino's rule: the level's value at least the logger's). */
  isLevelEnabled(level: LevelWithSilent): boolean {
    if (this.real) return this.real.isLevelEnabled(level);
    const values = this.parent.levels.values;
    const current = values[this.level];
    return level !== 'silent' && current !== undefined && values[level]! >= current;
  }

  /** Adds bindings (as pino's `setBindings`), kept until the child is built. */
  setBindings(bindings: Bindings): void {
    if (this.real) this.real.setBindings(bindings);
    else this.extra = { ...this.extra, ...bindings };
  }

  /** The bindings so far (as pino's `bindings()`). */
  bindings(): Bindings {
    return this.real ? this.real.bindings() : { ...this.parent.bindings(), ...this.bindingsGiven, ...this.extra };
  }

  child(bindings: Bindings, opts?: ChildLoggerOptions): Logger {
    return this.logger().child(bindings, opts);
  }

  private write(level: Level, args: Parameters<LogFn>): void {
    if (this.isLevelEnabled(level)) this.logger()[level](...args);
  }

  // Methods on the prototype, not per-instance closures: one small object per request.
  fatal(...args: Parameters<LogFn>): void {
    this.write('fatal', args);
  }
  error(...args: Parameters<LogFn>): void {
    this.write('error', args);
  }
  warn(...args: Parameters<LogFn>): void {
    this.write('warn', args);
  }
  info(...args: Parameters<LogFn>): void {
    this.write('info', args);
  }
  debug(...args: Parameters<LogFn>): void {
    this.write('debug', args);
  }
  trace(...args: Parameters<LogFn>): void {
    this.write('trace', args);
  }
  silent(): void {}
}

/** Fastify's `childLoggerFactory`: a {@link LazyRequestLogger} over the server's pino logger. */
export function lazyChildLoggerFactory(logger: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyRequestLogger(logger as unknown as Logger, bindings, opts);
}
