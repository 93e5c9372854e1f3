/**
 * Orders backend fetches: on-demand fetches (a reader is waiting) start at once up to the
 * connection limit and always before queued prefetch work; prefetch runs with its own small
 * concurrency and an optional bandwidth limit, so it only uses what on-demand reads leave. A
 * queued prefetch task that a reader comes to wait for is promoted to on-demand.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export type FetchPriority = 'demand' | 'prefetch';

export interface FetchTask {
  priority: FetchPriority;
  readonly bytes: number;
  started: boolean;
}

interface QueuedTask<T> extends FetchTask {
  run: (task: FetchTask) => Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

export interface FetchSchedulerOptions {
  /** Backend requests at once, all kinds (default 16). */
  maxConcurrent?: number;
  /** Prefetch requests at once (default 4, at most half of maxConcurrent). */
  prefetchConcurrent?: number;
  /** Prefetch bytes per second, 0 = unlimited. */
  prefetchBandwidth?: number;
}

export class FetchScheduler {
  private readonly maxConcurrent: number;
  private readonly prefetchConcurrent: number;
  private readonly bandwidth: number;
  private active = 0;
  private activePrefetch = 0;
  private readonly demandQueue: QueuedTask<unknown>[] = [];
  private readonly prefetchQueue: QueuedTask<unknown>[] = [];
  /** Token bucket for prefetch bytes: time (ms) when the bucket is next empty. */
  private bandwidthClock = 0;
  private pumpScheduled = false;

  constructor(options: FetchSchedulerOptions = {}) {
    this.maxConcurrent = Math.max(1, options.maxConcurrent ?? 16);
    this.prefetchConcurrent = Math.max(1, Math.min(options.prefetchConcurrent ?? 4, Math.ceil(this.maxConcurrent / 2)));
    this.bandwidth = options.prefetchBandwidth ?? 0;
  }

  /** Runs `fn` when its turn comes; the returned task can be promoted while it waits. */
  schedule<T>(priority: FetchPriority, bytes: number, fn: (task: FetchTask) => Promise<T>): { task: FetchTask; result: Promise<T> } {
    let task!: QueuedTask<T>;
    const result = new Promise<T>((resolve, reject) => {
      task = { priority, bytes, started: false, run: fn, resolve, reject };
    });
    (priority === 'demand' ? this.demandQueue : this.prefetchQueue).push(task as QueuedTask<unknown>);
    this.pump();
    return { task, result };
  }

  /** A reader waits for this task: move it ahead of prefetch work if it has not started. */
  promote(task: FetchTask): void {
    if (task.started || task.priority === 'demand') return;
    const i = this.prefetchQueue.indexOf(task as QueuedTask<unknown>);
    if (i >= 0) {
      this.prefetchQueue.splice(i, 1);
      task.priority = 'demand';
      this.demandQueue.push(task as QueuedTask<unknown>);
      this.pump();
    }
  }

  /** Queued prefetch tasks (for metrics and shutdown). */
  get queuedPrefetch(): number {
    return this.prefetchQueue.length;
  }

  /** Drops queued prefetch work (its promises reject with `reason`). */
  cancelPrefetch(reason: Error): void {
    for (const t of this.prefetchQueue.splice(0)) t.reject(reason);
  }

  private pump(): void {
    while (this.active < this.maxConcurrent && this.demandQueue.length > 0) this.start(this.demandQueue.shift()!);
    if (this.demandQueue.length > 0 || this.prefetchQueue.length === 0) return;
    while (this.active < this.maxConcurrent && this.activePrefetch < this.prefetchConcurrent && this.prefetchQueue.length > 0) {
      const wait = this.bandwidthWait();
      if (wait > 0) {
        if (!this.pumpScheduled) {
          this.pumpScheduled = true;
          void sleep(wait, undefined, { ref: false }).then(() => {
            this.pumpScheduled = false;
            this.pump();
          });
        }
        return;
      }
      const task = this.prefetchQueue.shift()!;
      this.chargeBandwidth(task.bytes);
      this.start(task);
    }
  }

  private bandwidthWait(): number {
    if (this.bandwidth <= 0) return 0;
    return Math.max(0, this.bandwidthClock - Date.now());
  }

  private chargeBandwidth(bytes: number): void {
    if (this.bandwidth <= 0) return;
    this.bandwidthClock = Math.max(this.bandwidthClock, Date.now()) + (bytes / this.bandwidth) * 1000;
  }

  private start(task: QueuedTask<unknown>): void {
    task.started = true;
    const prefetch = task.priority === 'prefetch';
    this.active++;
    if (prefetch) this.activePrefetch++;
    task
      .run(task)
      .then(task.resolve, task.reject)
      .finally(() => {
        this.active--;
        if (prefetch) this.activePrefetch--;
        this.pump();
      });
  }
}
