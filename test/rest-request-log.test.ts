// The REST request log: one line per answered request. Successful reads are
// at debug (monitoring polls all day), writes at info, failures at info
// (4xx) or error (5xx); the bearer token never appears.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { loadControlConfig } from '../control/config';
import { startControlServer } from '../control/server';
import { createLogger } from '../contract/log';
import { removeDir, restRequest, scratchDir } from './support/harness';

const LEVELS: Record<number, string> = { 20: 'debug', 30: 'info', 40: 'warn', 50: 'error' };

async function serverLoggingAt(level: string) {
  const lines: any[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const dir = scratchDir(`rest-request-log-${level}`);
  const server = await startControlServer(
    loadControlConfig({ 'data-dir': dir, 'grpc-listen': '127.0.0.1:0', 'rest-listen': '127.0.0.1:0' }),
    createLogger('test', level, sink),
  );
  const admin = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
  const rest = (method: string, path: string, body?: unknown, token: string | undefined = admin) =>
    restRequest({ port: Number(new URL(server.restUrl).port), ca: server.caPem, token }, method, path, body);
  const answered = () => lines.filter((l) => l.msg === 'request answered');
  const close = async () => {
    await server.close();
    removeDir(dir);
  };
  // The line is written once the answer has gone out, so the client may see the answer first.
  const until = async (count: number) => {
    for (const deadline = Date.now() + 30_000; answered().length < count && Date.now() < deadline;) await delay(20);
  };
  return { rest, answered, close, admin, lines, until };
}

t.test('at debug: one line per request, its level set by method and status', async (t) => {
  const s = await serverLoggingAt('debug');
  t.teardown(s.close);
  t.equal((await s.rest('GET', '/v1/instances')).status, 200);
  t.equal((await s.rest('PUT', '/v1/instances/i-0123456789abcdef0/assignment', { role: 'node' })).status, 200);
  t.equal((await s.rest('GET', '/v1/instances/i-0fffffffffffffff0')).status, 404);
  t.equal((await s.rest('GET', '/v1/instances', undefined, 'tbk_not-a-real-token-at-all')).status, 401);
  await s.until(4);
  const seen = s.answered().map((l) => ({ level: LEVELS[l.level], method: l.method, url: l.url, status: l.status }));
  t.same(seen, [
    { level: 'debug', method: 'GET', url: '/v1/instances', status: 200 },
    { level: 'info', method: 'PUT', url: '/v1/instances/i-0123456789abcdef0/assignment', status: 200 },
    { level: 'info', method: 'GET', url: '/v1/instances/i-0fffffffffffffff0', status: 404 },
    { level: 'info', method: 'GET', url: '/v1/instances', status: 401 },
  ]);
  for (const line of s.answered()) t.type(line.ms, 'number', 'each line says how long the answer took');
  t.notOk(
    s.lines.some((l) => JSON.stringify(l).includes(s.admin)),
    'the bearer token is not logged',
  );
  t.notOk(
    s.lines.some((l) => l.msg === 'incoming request' || l.msg === 'request completed'),
    "fastify's own two lines per request are off",
  );
});

t.test('at info (the default): successful reads write nothing, writes and failures do', async (t) => {
  const s = await serverLoggingAt('info');
  t.teardown(s.close);
  for (let i = 0; i < 5; i++) t.equal((await s.rest('GET', '/v1/health')).status, 200);
  t.equal((await s.rest('PUT', '/v1/instances/i-0123456789abcdef0/assignment', { role: 'node' })).status, 200);
  t.equal((await s.rest('GET', '/v1/instances/i-0fffffffffffffff0')).status, 404);
  await s.until(2);
  t.same(
    s.answered().map((l) => `${l.method} ${l.status}`),
    ['PUT 200', 'GET 404'],
  );
});
