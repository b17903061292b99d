// The parts behind "why a host failed" and drift (issue 13): secret masking,
// the unified diff (checked against diff(1)), the agent's record of the files
// it wrote, Teleport's output kept in process mode (the stand-in Teleport as
// a real child process), and the control server's checks of what an agent
// reports (real gRPC over TLS).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { ControlClient } from '../agent/control-client';
import { WrittenFiles, WRITTEN_FILES_RECORD } from '../agent/drift';
import { teleportLogTail } from '../agent/log-tail';
import { OutputLines, ProcessManager } from '../agent/service-manager';
import { unifiedDiff } from '../contract/line-diff';
import { createLogger } from '../contract/log';
import { escapeControlCharacters, maskLines } from '../contract/secret-mask';
import { loadControlConfig } from '../control/config';
import { startControlServer } from '../control/server';
import { testIdentity } from './support/fixtures';
import { freePort, removeDir, scratchDir, TELEPORT_STANDIN, until } from './support/harness';

const log = createLogger('test', 'silent');
const TOKEN = '4f1c2d9e8b7a6c5d4e3f2a1b0c9d8e7f';

t.test('masking: the known token literally, PEM blocks, secret keys, AWS key ids, proxy passwords', async (t) => {
  const lines = [
    `ERROR: failed to register: "${TOKEN}" not found`,
    'auth_token: abc123secret',
    '{"token":"q1w2e3","level":"error"}',
    'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    'using AKIAIOSFODNN7EXAMPLE for S3',
    'HTTPS_PROXY=http://user:hunter2@proxy:3128',
    'key follows -----BEGIN PRIVATE KEY-----',
    'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC',
    '-----END PRIVATE KEY----- done',
    'one line -----BEGIN RSA PRIVATE KEY-----MIIB-----END RSA PRIVATE KEY----- after',
    'ca_pin: sha256:0123abcd',
  ];
  t.same(maskLines(lines, [TOKEN]), [
    'ERROR: failed to register: "***" not found',
    'auth_token: ***',
    '{"token":"***","level":"error"}',
    'aws_secret_access_key = ***',
    'using *** for S3',
    'HTTPS_PROXY=http://user:***@proxy:3128',
    'key follows -----BEGIN PRIVATE KEY-----',
    '***',
    '-----END PRIVATE KEY----- done',
    'one line -----BEGIN RSA PRIVATE KEY----- *** -----END RSA PRIVATE KEY----- after',
    'ca_pin: sha256:0123abcd',
  ]);
  t.same(
    maskLines(['-----BEGIN CERTIFICATE-----', 'MIIB', 'cut off']),
    ['-----BEGIN CERTIFICATE-----', '***'],
    'an unterminated block is masked to the end',
  );
  t.equal(escapeControlCharacters('\u001b[31mred\u001b[0m\ttab\r'), '\\x1b[31mred\\x1b[0m\ttab\\x0d', 'terminal escapes become text');
});

const diffAvailable = spawnSync('diff', ['--version']).status === 0;
t.test('the unified diff is the one diff -u prints', { skip: diffAvailable ? false : 'diff(1) is not installed' }, async (t) => {
  const dir = scratchDir('line-diff');
  t.teardown(() => removeDir(dir));
  const base = Array.from({ length: 40 }, (_, i) => `line ${i}`);
  const cases: Array<[string, string[], string[]]> = [
    ['one line changed', base, base.map((l) => (l === 'line 10' ? 'line ten' : l))],
    ['changes close together share a hunk', base, base.filter((l) => l !== 'line 5' && l !== 'line 9')],
    ['lines added at both ends', base, ['first', ...base, 'last']],
    ['from empty', [], ['a', 'b']],
    ['to empty', ['a', 'b'], []],
    ['everything different', ['a', 'b', 'c'], ['x', 'y']],
  ];
  for (const [name, before, after] of cases) {
    const [a, b] = [join(dir, 'a'), join(dir, 'b')];
    const text = (lines: string[]) => lines.map((l) => `${l}\n`).join('');
    writeFileSync(a, text(before));
    writeFileSync(b, text(after));
    const expected = spawnSync('diff', ['-u', '--label', 'A', '--label', 'B', a, b], { encoding: 'utf8' }).stdout;
    t.equal(unifiedDiff(text(before), text(after), { from: 'A', to: 'B' }), expected, name);
  }
  t.equal(unifiedDiff('same\n', 'same\n', { from: 'A', to: 'B' }), '', 'no diff for equal texts');
});

t.test('the record of written files tells hand edits from the agent\u2019s own writes, across restarts', async (t) => {
  const dir = scratchDir('written-files');
  t.teardown(() => removeDir(dir));
  const config = join(dir, 'teleport.yaml');
  const unit = join(dir, 'teleport.service');
  const yaml = 'version: v3\nteleport:\n  nodename: a\n  log:\n    severity: INFO\n';
  writeFileSync(config, yaml);
  writeFileSync(unit, '[Service]\n');
  const written = new WrittenFiles(dir, log);
  t.same(await written.drift(), [], 'nothing recorded yet: no drift');
  await written.remember(3, [
    { path: config, content: yaml },
    { path: unit, content: '[Service]\n' },
  ]);
  t.equal((readFileSync(join(dir, WRITTEN_FILES_RECORD)).length > 0, true), true);
  t.same(await written.drift(), [], 'as written');

  writeFileSync(config, yaml.replace('INFO', 'DEBUG') + `auth_token: ${TOKEN}\n`);
  rmSync(unit);
  const again = new WrittenFiles(dir, log);
  t.equal(await again.generation(), 3, 'the generation is remembered by a restarted agent');
  const drift = await again.drift([TOKEN]);
  t.same(
    drift.map((d) => d.path),
    [config, unit],
  );
  t.equal(
    drift[0].diff,
    [
      `--- ${config} (as teleboot wrote it)`,
      `+++ ${config} (now)`,
      '@@ -2,4 +2,5 @@',
      ' teleport:',
      '   nodename: a',
      '   log:',
      '-    severity: INFO',
      '+    severity: DEBUG',
      '+auth_token: ***',
      '',
    ].join('\n'),
    'a unified diff with the secret masked',
  );
  t.match(drift[1].diff, new RegExp(`\\+\\+\\+ ${unit} \\(removed\\)\\n@@ -1,1 \\+0,0 @@\\n-\\[Service\\]`), 'a removed file is drift too');

  // Files left as changed by hand keep their old entry: they still show as drifted.
  await again.remember(3, [{ path: config, content: yaml }], new Set([config]));
  t.same(
    (await again.drift()).map((d) => d.path),
    [config],
    'the kept file is still drifted; the unit is no longer watched',
  );
  writeFileSync(config, yaml);
  t.same(await again.drift(), [], 'put back: no drift');
  t.equal((await new WrittenFiles(dir, log).drift()).length, 0);

  writeFileSync(join(dir, WRITTEN_FILES_RECORD), '{not json');
  t.same(await new WrittenFiles(dir, log).drift(), [], 'an unreadable record means no drift known, not a failure');
});

t.test('output lines: a ring of the last lines, a partial last line included', async (t) => {
  const out = new OutputLines(3);
  out.add('one\ntwo\r\nthr');
  out.add('ee\nfour\nfi');
  t.same(out.last(10), ['three', 'four', 'fi']);
  t.same(out.last(2), ['four', 'fi']);
});

t.test('process mode: a Teleport that never joins leaves its last lines, and the agent masks the token in them', async (t) => {
  const dir = scratchDir('process-tail');
  t.teardown(() => removeDir(dir));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  // The stand-in's knob file: its join fails, logging the token.
  writeFileSync(join(dataDir, 'standin.env'), 'TELEPORT_STANDIN_FAIL_JOIN=1\nTELEPORT_STANDIN_READY_DELAY_MS=0\n');
  const tokenFile = join(dir, 'join-token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const config = join(dir, 'teleport.yaml');
  writeFileSync(
    config,
    stringify({
      version: 'v3',
      teleport: {
        data_dir: dataDir,
        auth_server: '127.0.0.1:3025',
        join_params: { method: 'token', token_name: tokenFile },
        diag_addr: `127.0.0.1:${await freePort()}`,
      },
      ssh_service: { enabled: true },
      auth_service: { enabled: false },
      proxy_service: { enabled: false },
    }),
  );
  const services = new ProcessManager([TELEPORT_STANDIN, 'start', `--config=${config}`], log);
  t.teardown(() => services.stop());
  await services.ensureRunning(false);
  await until('two failed join attempts in its output', async () => (await services.logTail(40)).length >= 3, 30_000);
  const raw = await services.logTail(40);
  t.match(raw[0], /Teleport v17\.0\.0-standin starting/, 'stdout is kept');
  t.ok(
    raw.some((l) => l.includes(TOKEN)),
    'stderr too: the raw output holds the token',
  );
  const tail = await teleportLogTail(services, [TOKEN]);
  t.notOk(tail.join('\n').includes(TOKEN), 'the reported tail does not');
  t.match(tail, [/starting/, /Failed to register through auth server: "\*\*\*": token not found/]);
  const events = readFileSync(join(dataDir, 'standin-events.jsonl'), 'utf8').trim().split('\n');
  t.match(JSON.parse(events[0]), { event: 'start', pid: Number }, 'the stand-in records its start');
});

t.test('ReportStatus: the log tail and the drift are bounded, free of control characters, and masked again', async (t) => {
  const dir = scratchDir('grpc-observe');
  const config = loadControlConfig({ 'data-dir': dir, 'grpc-listen': '127.0.0.1:0', 'rest-listen': '127.0.0.1:0' });
  const server = await startControlServer(config, log);
  const c = new ControlClient({ endpoints: [`localhost:${server.grpcPort}`], caPem: server.caPem });
  t.teardown(async () => {
    c.close();
    await server.close();
    removeDir(dir);
  });
  const id = 'i-0eeeeeeeeeeeeeee1';
  await c.enroll(testIdentity(id), readFileSync(config.joinTokenFile, 'utf8').trim(), 'test');
  await server.service.assign(id, { role: 'node' }, 'test');
  const report = (extra: object) =>
    c
      .reportStatus({
        instanceId: id,
        appliedGeneration: 1,
        state: 'degraded',
        teleportUnitState: 'active',
        teleportReady: false,
        message: 'not ready',
        agentVersion: 't',
        ...extra,
      })
      .then(
        () => 'OK',
        (err: grpc.ServiceError) => `${grpc.status[err.code]}: ${err.details}`,
      );
  t.match(await report({ logTail: ['ok', 'bad \u001b[2J'] }), /^INVALID_ARGUMENT: log_tail\[1\]: holds control characters/);
  t.match(await report({ logTail: Array.from({ length: 101 }, () => 'x') }), /^INVALID_ARGUMENT: log_tail: more than 100 lines/);
  t.match(await report({ logTail: ['x'.repeat(1025)] }), /^INVALID_ARGUMENT: log_tail\[0\]: longer than 1024 characters/);
  t.match(await report({ drift: [{ path: 'relative', diff: '' }] }), /^INVALID_ARGUMENT: drift\[0\]\.path: must be an absolute path/);
  t.match(
    await report({ drift: [{ path: '/etc/teleport.yaml', diff: '+a\u0007' }] }),
    /^INVALID_ARGUMENT: drift\[0\]\.diff: holds control/,
  );
  t.equal((await server.service.store.getInstance(id))?.status, null, 'nothing stored from refused reports');

  t.equal(
    await report({
      logTail: ['\tstarting', 'ERROR auth_token: leaked1234'],
      drift: [{ path: '/etc/teleport.yaml', diff: '--- a\n+++ b\n@@ -1,1 +1,1 @@\n-x\n+token: leaked5678\n' }],
    }),
    'OK',
  );
  const status = (await server.service.store.getInstance(id))?.status;
  t.same(status?.logTail, ['\tstarting', 'ERROR auth_token: ***'], 'stored, masked by the server too (an agent may miss one)');
  t.same(status?.drift, [{ path: '/etc/teleport.yaml', diff: '--- a\n+++ b\n@@ -1,1 +1,1 @@\n-x\n+token: ***\n' }]);

  t.equal(await report({ state: 'ready', teleportReady: true }), 'OK');
  const ready = (await server.service.store.getInstance(id))?.status;
  t.equal(ready?.logTail, undefined, 'a ready report carries no tail');
  t.equal(ready?.drift, undefined);
});
