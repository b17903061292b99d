// Saves an import plan through the control server's REST API, so it is
// validated and audited like any operator's change: the settings first (an
// assignment is judged against them), then the rules and assignments.
import { request } from 'node:https';
import { isIP } from 'node:net';
import type { ImportPlan } from './plan';

export interface RestTarget {
  /** host:port of the REST listener. */
  addr: string;
  /** PEM of the CA that signed the server's certificate. */
  ca: string;
  /** An API token with the admin scope (settings need it). */
  token: string;
}

/** A refused call: the server's message names the field. */
export class ApplyError extends Error {}

function call(target: RestTarget, method: string, path: string, body: unknown): Promise<unknown> {
  const i = target.addr.lastIndexOf(':');
  const host = target.addr.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(target.addr.slice(i + 1));
  if (!host || !Number.isInteger(port))
    return Promise.reject(new ApplyError(`--addr must be host:port, got ${JSON.stringify(target.addr)}`));
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        method,
        path,
        ca: target.ca,
        ...(isIP(host) ? {} : { servername: host }),
        headers: {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(payload)),
          authorization: `Bearer ${target.token}`,
          'x-teleboot-actor': 'import',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let answer: unknown;
          try {
            answer = JSON.parse(text);
          } catch {
            answer = text;
          }
          if ((res.statusCode ?? 500) >= 300) {
            const message = (answer as { message?: string })?.message ?? text;
            reject(new ApplyError(`${method} ${path} refused (${res.statusCode}): ${message}`));
          } else resolve(answer);
        });
      },
    );
    req.on('error', (err) => reject(new ApplyError(`${method} ${path}: ${err.message} (is the control server at ${target.addr}?)`)));
    req.end(payload);
  });
}

/** Saves the plan; returns one line per saved change. Stops at the first refusal, naming it. */
export async function applyPlan(plan: ImportPlan, target: RestTarget): Promise<string[]> {
  const saved: string[] = [];
  if (Object.keys(plan.settings).length > 0) {
    await call(target, 'PATCH', '/v1/settings', plan.settings);
    saved.push(`cluster settings (${Object.keys(plan.settings).join(', ')})`);
  }
  for (const rule of plan.rules) {
    await call(target, 'POST', '/v1/rules', rule);
    saved.push(`rule "${rule.name}"`);
  }
  for (const { instanceId, assignment } of plan.assignments) {
    await call(target, 'PUT', `/v1/instances/${encodeURIComponent(instanceId)}/assignment`, assignment);
    saved.push(`assignment of ${instanceId}`);
  }
  return saved;
}
