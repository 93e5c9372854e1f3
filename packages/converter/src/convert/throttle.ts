/** Layer progress is reported at most this often. */
export const PROGRESS_INTERVAL_MS = 100;

/** `report`, called at most once per `intervalMs` however often the returned function is called. */
export function throttled(report: () => void, intervalMs = PROGRESS_INTERVAL_MS): () => void {
  let last = 0;
  return () => {
    const now = Date.now();
    if (now - last < intervalMs) return;
    last = now;
    report();
  };
}
