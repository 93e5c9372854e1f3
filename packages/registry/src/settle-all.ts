/**
 * Like `Promise.all`, but waits for every promise to settle before it rejects, so that no task
 * of an operation is still running when the operation reports its failure. It rejects with
 * the earliest rejection (in time, not in list order): the later ones are usually that
 * failure's consequences (tasks cancelled because of it).
 */
export async function settleAll<T>(promises: Iterable<Promise<T>>): Promise<T[]> {
  let first: { reason: unknown } | undefined;
  const results = await Promise.allSettled(
    Array.from(promises, (p) =>
      p.catch((err: unknown) => {
        first ??= { reason: err };
        throw err;
      }),
    ),
  );
  if (first) throw first.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
