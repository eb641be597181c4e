/** Minimal typings for autocannon's programmatic API (it ships none). */
declare module 'autocannon' {
  interface Options {
    url: string;
    connections?: number;
    duration?: number;
    headers?: Record<string, string>;
    requests?: Array<{ setupRequest?: (req: Record<string, unknown>) => Record<string, unknown> }>;
  }
  export default function autocannon(opts: Options): Promise<Record<string, unknown>>;
}
