// Issue 11, item 14: a test that cannot run its real part reports a tap
// skip with its reason (never a comment that tap reads as "no tests
// found"), and .ci/check-skips, which .ci/run calls, lists the skips and
// fails under CI=true. The end-to-end boot test is run as an unprivileged
// user (as a developer without root would), its real TAP output checked.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, removeDir, scratchDir } from './support/harness';

const E2E_BOOT = join(REPO, 'dist/test/e2e-boot.test.js');
const CHECK_SKIPS = join(REPO, '.ci/check-skips');

/**
 * e2e-boot as nobody when we are root, as ourselves otherwise (then we
 * already lack root); on its own, not inside this tap run (a clean environment).
 */
function runWithoutRoot(t: Test): string {
  const asRoot = process.getuid?.() === 0;
  // Through env(1) with a clean environment: tap's process tracking, which
  // this run passes to its children, would write into the repository as nobody.
  const run = ['env', '-i', `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, process.execPath, E2E_BOOT];
  const [command, ...args] = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...run] : run;
  const r = spawnSync(command, args, { encoding: 'utf8', cwd: tmpdir(), timeout: 60_000 });
  t.equal(r.status, 0, 'e2e-boot without root exits 0');
  t.equal(r.stderr, '', `and prints no error`);
  return r.stdout;
}

t.test('without root, the end-to-end boot test is a skip that says why', async (t) => {
  const tap = runWithoutRoot(t);
  t.match(tap, /^ok 1 - needs systemd in a namespace: systemd namespaces need root .* # SKIP$/m);
  t.match(tap, /# \{ total: 1, pass: 0, skip: 1 \}/);
  t.notMatch(tap, /no tests found/);

  const dir = scratchDir('skips');
  t.teardown(() => removeDir(dir));
  const log = join(dir, 'tap.log');
  writeFileSync(log, tap);
  const check = (ci: string) => spawnSync(CHECK_SKIPS, [log], { encoding: 'utf8', env: { ...process.env, CI: ci } });
  const inCi = check('true');
  t.equal(inCi.status, 1, 'under CI=true a skip fails the run');
  t.match(
    inCi.stdout,
    /skipped tests \(1\):\n {2}needs systemd in a namespace: systemd namespaces need root/,
    'naming the test and its reason',
  );
  t.match(inCi.stderr, /CI=true: a skipped test is a test that did not run/);
  const local = check('');
  t.equal(local.status, 0, 'outside CI it is listed, not fatal');
  t.match(local.stdout, /skipped tests \(1\)/);
});

t.test(".ci/check-skips names the file of a skip inside tap's run, and a run without skips passes", async (t) => {
  const dir = scratchDir('skips-runner');
  t.teardown(() => removeDir(dir));
  const withSkip = join(dir, 'with-skip.log');
  writeFileSync(
    withSkip,
    [
      'TAP version 14',
      '# Subtest: test/acme.test.ts',
      '    ok 1 - pebble and pebble-challtestsrv are not installed # SKIP',
      '    1..1',
      'ok 1 - test/acme.test.ts',
      '# Subtest: test/other.test.ts',
      '    1..0 # no tests found',
      'ok 2 - test/other.test.ts # SKIP no tests found',
      '# { total: 2, pass: 0, skip: 2 }',
      '',
    ].join('\n'),
  );
  const r = spawnSync(CHECK_SKIPS, [withSkip], { encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  t.equal(r.status, 1);
  t.match(r.stdout, /test\/acme\.test\.ts: pebble and pebble-challtestsrv are not installed # SKIP/);
  t.match(r.stdout, /test\/other\.test\.ts # SKIP no tests found/, 'a file with no tests at all counts as a skip');
  const clean = join(dir, 'clean.log');
  writeFileSync(clean, 'TAP version 14\nok 1 - test/a.test.ts\n# { total: 12, pass: 12 }\n');
  const ok = spawnSync(CHECK_SKIPS, [clean], { encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  t.equal(ok.status, 0, ok.stdout + ok.stderr);
  t.equal(ok.stdout, '');
});
