// Concurrent callers of an expensive read share one: a call never gets a read
// that started before it (so it sees every write that finished before it),
// but all calls arriving while a read runs share the one that starts next.
// /v1/health under many monitoring clients reads the counts once per round.

export function coalesced<T>(read: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  let queued: Promise<T> | undefined;
  const start = (): Promise<T> => {
    const p: Promise<T> = read().finally(() => {
      if (running === p) running = undefined;
    });
    return (running = p);
  };
  return () => {
    if (!running) return start();
    queued ??= running
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        queued = undefined;
        return start();
      });
    return queued;
  };
}
