// SQLite's quick_check for /readyz, off the main thread: it reads every page
// (about half a second for a 180 MB database here), and better-sqlite3 is
// synchronous, so on the main thread it would stall gRPC and REST alike.
// Each check opens its own read-only connection, so it reads what is on
// disk rather than the server connection's page cache.
import { Worker } from 'node:worker_threads';

// Plain JavaScript run with eval: the same under the TypeScript test loader and the build.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
parentPort.on('message', (path) => {
  let problem = null;
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      const found = db.pragma('quick_check(5)').map((r) => r.quick_check).filter((r) => r !== 'ok');
      if (found.length) problem = found.join('; ');
    } finally {
      db.close();
    }
  } catch (err) {
    problem = err.message;
  }
  parentPort.postMessage(problem);
});
`;

export class IntegrityChecker {
  private worker: Worker | undefined;
  private readonly waiting: Array<(problem: string | undefined) => void> = [];

  constructor(private readonly path: string) {}

  private start(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { sqlite: require.resolve('better-sqlite3') } });
    // A pending check must not keep a stopping process alive.
    worker.unref();
    worker.on('message', (problem: string | null) => this.waiting.shift()?.(problem ?? undefined));
    worker.on('error', (err) => {
      this.worker = undefined;
      for (const resolve of this.waiting.splice(0)) resolve(`the integrity check could not run: ${err.message}`);
    });
    return worker;
  }

  /** What quick_check finds wrong with the file on disk; undefined when nothing. */
  check(): Promise<string | undefined> {
    this.worker ??= this.start();
    const worker = this.worker;
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      worker.postMessage(this.path);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}
