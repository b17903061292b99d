// Issue 11, item 2: at start both halves of every key pair (the CA, the
// server certificate and key) are present and belong together, or both are
// absent on a first start; anything else stops `serve` naming the files,
// and a key file on disk is never written over. Real server processes.
import t from 'tap';
import { copyFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { writeNewFile } from '../control/data-dir';
import { ControlProcess, removeDir, scratchDir } from './support/harness';
import { copyDataDir, readText, serveExpectingRefusal, clustersFor } from './support/control-data';

const clusters = clustersFor(t, 'pairs', 2);

t.test('ca.pem missing beside ca-key.pem: refused naming both; the key is untouched', async (t) => {
  const dir = copyDataDir(clusters[0], 'pairs-no-ca');
  t.teardown(() => removeDir(join(dir, '..')));
  const keyFile = join(dir, 'tls/ca-key.pem');
  const key = readText(keyFile);
  const mtime = statSync(keyFile).mtimeMs;
  rmSync(join(dir, 'tls/ca.pem'));
  const r = await serveExpectingRefusal(dir);
  t.equal(r.code, 1);
  t.match(r.stderr, `the CA key pair is half there: ${keyFile} exists but ${join(dir, 'tls/ca.pem')} is missing`);
  t.match(r.stderr, /teleboot-control restore/);
  t.equal(readText(keyFile), key, 'ca-key.pem holds the same key');
  t.equal(statSync(keyFile).mtimeMs, mtime, 'and was not written');
});

t.test('every other half pair, and a pair of two clusters: refused naming the files', async (t) => {
  const cases: Array<[string, (dir: string) => void, (dir: string) => string]> = [
    [
      'ca-key.pem missing',
      (dir) => rmSync(join(dir, 'tls/ca-key.pem')),
      (dir) => `${join(dir, 'tls/ca.pem')} exists but ${join(dir, 'tls/ca-key.pem')} is missing`,
    ],
    [
      'server-key.pem missing',
      (dir) => rmSync(join(dir, 'tls/server-key.pem')),
      (dir) => `the server key pair is half there: ${join(dir, 'tls/server.pem')} exists but ${join(dir, 'tls/server-key.pem')} is missing`,
    ],
    [
      'server.pem missing',
      (dir) => rmSync(join(dir, 'tls/server.pem')),
      (dir) => `${join(dir, 'tls/server-key.pem')} exists but ${join(dir, 'tls/server.pem')} is missing`,
    ],
    [
      "another cluster's ca.pem",
      (dir) => copyFileSync(join(clusters[1], 'tls/ca.pem'), join(dir, 'tls/ca.pem')),
      (dir) => `${join(dir, 'tls/ca.pem')} and ${join(dir, 'tls/ca-key.pem')} do not belong together`,
    ],
    [
      'both CA files gone while the database issued from them',
      (dir) => {
        rmSync(join(dir, 'tls/ca.pem'));
        rmSync(join(dir, 'tls/ca-key.pem'));
      },
      (dir) => `the CA (${join(dir, 'tls/ca.pem')}, ${join(dir, 'tls/ca-key.pem')}) is missing, but the database`,
    ],
  ];
  // Each case on its own copy, all at once: they are separate processes.
  const runs = cases.map(([name, damage]) => {
    const dir = copyDataDir(clusters[0], `pairs-${name.replace(/\W+/g, '-')}`);
    t.teardown(() => removeDir(join(dir, '..')));
    damage(dir);
    return { dir, before: readdir(dir), result: serveExpectingRefusal(dir) };
  });
  for (const [i, [name, , message]] of cases.entries()) {
    const { dir, before, result } = runs[i];
    const r = await result;
    t.equal(r.code, 1, `${name}: exits 1`);
    t.match(r.stderr, message(dir), name);
    t.same(readdir(dir), before, `${name}: no file was written`);
  }
});

/** Every file under tls/ with its content. */
function readdir(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of ['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem']) {
    try {
      out[f] = readText(join(dir, 'tls', f));
    } catch {
      out[f] = '(missing)';
    }
  }
  return out;
}

t.test('a server certificate for new names is issued for the key there is; the key file stays', async (t) => {
  const dir = copyDataDir(clusters[0], 'pairs-renew');
  t.teardown(() => removeDir(join(dir, '..')));
  const keyFile = join(dir, 'tls/server-key.pem');
  const key = readText(keyFile);
  const config = join(dir, '..', 'control.yaml');
  writeFileSync(config, stringify({ tls: { server_names: ['localhost', '127.0.0.1', 'control.internal'] } }));
  const control = new ControlProcess(dir, ['-c', config]);
  await control.start();
  t.teardown(() => control.stop());
  const cert = new X509Certificate(readText(join(dir, 'tls/server.pem')));
  t.equal(cert.checkHost('control.internal'), 'control.internal', 'the new certificate covers the new name');
  t.equal(readText(keyFile), key, 'server-key.pem is the same key');
  t.ok(cert.checkPrivateKey(createPrivateKey(key)), 'and the certificate is for it');
});

t.test('writeNewFile never replaces a file', async (t) => {
  const dir = scratchDir('pairs-write');
  t.teardown(() => removeDir(dir));
  const path = join(dir, 'key.pem');
  writeNewFile(path, 'first\n', 0o600);
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.throws(() => writeNewFile(path, 'second\n', 0o600), /key\.pem already exists; teleboot-control never replaces it/);
  t.equal(readText(path), 'first\n');
});
