// One worker process of the propagation benchmark: it runs a share of the
// watching hosts (bench/watching-host.ts) against one control replica. Each
// host applies a new generation as soon as it reaches it (nothing to restart
// here) and reports it; the worker tells the bench the wall-clock times
// (Date.now(): one clock for every process on the machine) at which the host
// applied it and at which the control server answered its report (recorded).
// Driven by bench/propagation.ts over the IPC channel.
import { WatchingHost } from './watching-host';

export type ToWatchWorker =
  | { type: 'start'; ids: string[]; endpoint: string; caPem: string; joinToken: string; heartbeatMs: number }
  | { type: 'count-watch-ends' }
  | { type: 'close' };

export type FromWatchWorker =
  | { type: 'started'; count: number }
  /** Watch streams that ended (and were opened again) since the start. */
  | { type: 'watch-ends'; count: number }
  /** A host applied a new generation (at once when it reached it), and when the control server answered its report. */
  | { type: 'applied'; instanceId: string; generation: number; appliedAt: number; recordedAt: number }
  | { type: 'report-failed'; message: string }
  | { type: 'error'; message: string };

const send = (msg: FromWatchWorker) => process.send!(msg);
const hosts: WatchingHost[] = [];

async function start(msg: Extract<ToWatchWorker, { type: 'start' }>): Promise<void> {
  const BATCH = 25;
  for (let i = 0; i < msg.ids.length; i += BATCH)
    await Promise.all(
      msg.ids.slice(i, i + BATCH).map(async (instanceId) => {
        const host = new WatchingHost({
          instanceId,
          endpoint: msg.endpoint,
          caPem: msg.caPem,
          joinToken: msg.joinToken,
          heartbeatMs: msg.heartbeatMs,
          onGeneration: (generation, report) => {
            // Applied on the host's own clock: at once, as it reached the host.
            const appliedAt = Date.now();
            // A report the server refuses under load (an agent retries it) is tried again, and counted.
            const attempt = (left: number) =>
              report().then(
                () => send({ type: 'applied', instanceId, generation, appliedAt, recordedAt: Date.now() }),
                (err: Error) => {
                  send({ type: 'report-failed', message: `${instanceId}: reporting ${generation}: ${err.message}` });
                  if (left > 0) setTimeout(() => void attempt(left - 1), 200);
                },
              );
            // Reported once the worker has taken in what reached its other hosts on this turn: each host is a machine
            // of its own, so one host's report must not hold up another's receipt (it would, 500 hosts in one process).
            setImmediate(() => void attempt(5));
          },
        });
        hosts.push(host);
        await host.start();
      }),
    );
  send({ type: 'started', count: hosts.length });
}

if (require.main === module) {
  const exit = () => {
    for (const h of hosts) h.close();
    process.exit(0);
  };
  process.on('message', (msg: ToWatchWorker) => {
    if (msg.type === 'start') start(msg).catch((err: Error) => send({ type: 'error', message: err.stack ?? err.message }));
    else exit();
  });
  process.on('disconnect', exit);
}
