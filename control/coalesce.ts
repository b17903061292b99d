// Concurrent callers of an expensive read share one: a call never gets a read
// that started before it (so it sees every write that finished before it),
// but all calls arriving while a read runs share the one that starts next.
// /v1/health under many monitoring clients reads the counts once per round.
// A read starts on the next turn of the event loop: a synchronous store
// (SQLite) would otherwise finish each read before the next request is even
// parsed, and requests that came in together share nothing.

export function coalesced<T>(read: () => Promise<T>): () => Promise<T> {
  /** The read in progress. */
  let running: Promise<T> | undefined;
  /** The read that starts when `running` ends, on the next turn: callers until then share it. */
  let next: Promise<T> | undefined;
  const settled = () => undefined;
  return () => {
    if (next) return next;
    const p: Promise<T> = (running ?? Promise.resolve())
      .then(settled, settled)
      .then(() => new Promise((turn) => setImmediate(turn)))
      .then(() => {
        next = undefined;
        running = p;
        return read();
      })
      .finally(() => {
        if (running === p) running = undefined;
      });
    return (next = p);
  };
}

/**
 * Concurrent reads of single keys share one read of many (a thousand
 * watching agents told of one change, a thousand status reports): the same
 * rule as coalesced, a call never gets a read that started before it, and
 * every key asked for while a read runs goes into the one that starts next.
 * `readMany` answers the keys it found; the others get undefined.
 */
export function batched<K, V>(readMany: (keys: K[]) => Promise<Map<K, V>>): (key: K) => Promise<V | undefined> {
  let keys = new Set<K>();
  const read = coalesced(() => {
    const taken = [...keys];
    keys = new Set();
    return readMany(taken);
  });
  return async (key) => {
    keys.add(key);
    return (await read()).get(key);
  };
}
