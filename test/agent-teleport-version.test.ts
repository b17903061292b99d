// The Teleport version an agent reports: the running Teleport's own (diag
// /metrics), else the installed binary's `teleport version`, which is run
// again only when the binary changed (not at every heartbeat).
import t from 'tap';
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostTeleportVersion } from '../agent/teleport-version';

const dir = mkdtempSync(join(tmpdir(), 'teleport-version-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const binary = join(dir, 'teleport');
const runs = join(dir, 'runs');
const runCount = () => (existsSync(runs) ? readFileSync(runs, 'utf8').length : 0);

/** A teleport binary that answers `version` as Teleport does and counts its runs; replaced whole, as an upgrade does. */
function install(version: string) {
  const tmp = `${binary}.new`;
  writeFileSync(tmp, `#!/bin/sh\nprintf x >> '${runs}'\necho "Teleport v${version} git:v${version}-0-g0 go1.22"\n`);
  chmodSync(tmp, 0o755);
  renameSync(tmp, binary);
}

t.test('without a version on /metrics: the binary is asked once, and again after it changed', async (t) => {
  install('16.0.1');
  const teleport = { diagAddr: '127.0.0.1:1', binary };
  t.equal(await hostTeleportVersion(teleport), '16.0.1');
  t.equal(await hostTeleportVersion(teleport), '16.0.1');
  t.equal(runCount(), 1, 'the unchanged binary ran once for two reports');
  install('16.0.2');
  t.equal(await hostTeleportVersion(teleport), '16.0.2', 'the upgraded binary is asked');
  t.equal(runCount(), 2);
  t.equal(await hostTeleportVersion({ diagAddr: '127.0.0.1:1', binary: join(dir, 'missing') }), undefined, 'no binary: unknown');
});

t.test("the running Teleport's /metrics wins, and nothing is run", async (t) => {
  const server = createServer((req, res) => {
    res.end(req.url === '/metrics' ? 'teleport_build_info{gitref="v17.0.0-0-g0",goversion="go1.22",version="17.0.0"} 1\n' : '');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const before = runCount();
  const diagAddr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.equal(await hostTeleportVersion({ diagAddr, binary }), '17.0.0');
  t.equal(runCount(), before, 'the binary was not run');
});
