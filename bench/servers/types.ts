// What every server under test looks like to the bench, whatever it is.

/**
 * The servers the bench can measure; nginx-nosendfile is nginx with `sendfile off`, for large objects;
 * outpost-secure is Outpost with issue 5's security gates on (IP deny list, rate limit, WAF).
 */
export const SERVER_IDS = ['outpost', 'outpost-secure', 'nginx', 'nginx-nosendfile', 'varnish'] as const;
export type ServerId = (typeof SERVER_IDS)[number];

export interface StartOptions {
  /** A scratch folder owned by this instance (configs, cache files, logs). */
  readonly dir: string;
  /** CPU list for taskset (`0`, `0-1`); undefined leaves placement to the kernel. */
  readonly cpus?: string | undefined;
  /** Path of the server's binary (nginx, varnishd, node). */
  readonly bin: string;
  /** Outpost only: also listen for HTTPS and h2. */
  readonly tls?: boolean;
}

export interface RunningServer {
  readonly id: ServerId;
  /** Cleartext HTTP/1.1 port on 127.0.0.1. */
  readonly port: number;
  /** HTTPS / h2 port, when started with tls. */
  readonly tlsPort?: number | undefined;
  /** The process-group leader; the server's other processes are its descendants. */
  readonly pid: number;
  /** Every process of the server right now (leader first). */
  pids(): number[];
  stop(): Promise<void>;
}

export type StartServer = (originPort: number, workers: number, opts: StartOptions) => Promise<RunningServer>;
