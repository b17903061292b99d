// The golden files under test/golden/ (issue 10): every layout's input.json
// rendered again must give, byte for byte, the teleport.yaml, unit and
// /etc/default/teleport stored beside it. A mismatch prints the diff (tap's
// string diff); run `npm run golden` when the change is intended.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GOLDEN_DIR, OUTPUTS, goldenLayouts, readGoldenInput, renderGolden } from './golden/golden';
import { TELEPORT_STANDIN } from './support/harness';
import { proxyCertificate } from './support/world';

const layouts = goldenLayouts();
const RUN_GOLDEN = ' (if a change is intended, run `npm run golden` and commit the files it rewrites)';

t.test('there are golden layouts to compare', async (t) => {
  for (const expected of ['auth', 'proxy-multiplex-letsencrypt', 'node-iam', 'all-starter', 'kube', 'db', 'discovery']) {
    t.ok(layouts.includes(expected), `test/golden/${expected}/input.json exists`);
  }
});

for (const layout of layouts) {
  t.test(`golden ${layout}`, async (t) => {
    const input = readGoldenInput(layout);
    t.ok(input.description, 'input.json says what the layout is');
    const rendered = renderGolden(input);
    t.ok(rendered['teleport.yaml'] && rendered['teleport.service'], 'every layout renders a config and a unit');
    for (const name of OUTPUTS) {
      const path = join(GOLDEN_DIR, layout, name);
      const stored = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
      const now = rendered[name];
      const where = `test/golden/${layout}/${name}`;
      if (stored === undefined || now === undefined) {
        t.equal(
          now === undefined,
          stored === undefined,
          `${where}: ${stored === undefined ? 'missing, but the renderer now writes it' : 'stored, but the renderer no longer writes it'}${stored === now ? '' : RUN_GOLDEN}`,
        );
      } else {
        // tap prints the diff of the two texts on a mismatch.
        t.equal(now, stored, `${where} is what the renderer writes${RUN_GOLDEN}`);
      }
    }
  });
}

t.test("every golden teleport.yaml passes the stand-in teleport's strict parser (Teleport refuses unknown keys)", async (t) => {
  // The stand-in reads the files the config names, as Teleport does: put them in a scratch directory.
  const dir = mkdtempSync(join(tmpdir(), 'teleboot-golden-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await proxyCertificate('teleport.example.com');
  const secrets: Record<string, string> = {
    'join-token': 'token\n',
    'license.pem': 'license\n',
    'proxy-fullchain.pem': cert.fullchain,
    'proxy-privkey.pem': cert.privkey,
  };
  for (const [name, content] of Object.entries(secrets)) writeFileSync(join(dir, name), content);
  for (const layout of layouts) {
    const yaml = readFileSync(join(GOLDEN_DIR, layout, 'teleport.yaml'), 'utf8')
      .split('/var/lib/teleboot/secrets/')
      .join(`${dir}/`)
      .split('/var/lib/teleport')
      .join(join(dir, 'data'));
    const file = join(dir, `${layout}.yaml`);
    writeFileSync(file, yaml);
    const r = spawnSync(process.execPath, [TELEPORT_STANDIN, 'configure', '--test', file], { encoding: 'utf8' });
    t.equal(r.status, 0, `${layout}: ${r.stderr}`);
  }
});
