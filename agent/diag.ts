// Teleport's diagnostic endpoint: /readyz answers 200 once the process has
// joined the cluster and serves.
import { request } from 'node:http';
import { sleep } from '../contract/backoff';

export function readyzOnce(diagAddr: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`http://${diagAddr}/readyz`, { timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** Polls /readyz until it answers 200 or the time is up; resolves whether it became ready. */
export async function waitForReady(diagAddr: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const start = Date.now();
  const deadline = start + timeoutMs;
  while (Date.now() < deadline) {
    if (await readyzOnce(diagAddr)) return true;
    // Teleport is usually ready within seconds: look often at first (a refused
    // connection costs next to nothing, and a boot waits for this answer), then ease off.
    // Its first tenth of a second, every 3 ms: a Go binary binds its diag port in milliseconds.
    const elapsed = Date.now() - start;
    const interval = elapsed < 100 ? 3 : elapsed < 1000 ? 10 : elapsed < 3000 ? 50 : 1000;
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())), signal);
  }
  return readyzOnce(diagAddr);
}

/**
 * The version the running Teleport reports in /metrics (teleport_build_info,
 * since Teleport 8.1); undefined when it does not answer or says nothing.
 */
export function runningVersion(diagAddr: string, timeoutMs = 2000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request(`http://${diagAddr}/metrics`, { timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text = (text + c).slice(-1_000_000)));
      res.on('end', () =>
        resolve(res.statusCode === 200 ? /^teleport_build_info\{[^}]*\bversion="v?([^"]+)"[^}]*\} 1$/m.exec(text)?.[1] : undefined),
      );
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}
