// Trials behind docs/SECURITY.md "Damaged data": backups of a serving control
// server while REST writes keep coming, each restored into a new data
// directory and checked (the restore's own checks: checksums, quick_check,
// one cluster id). Prints how many writes ran meanwhile and how many
// backups restored. `npx tsc -p tsconfig.json && node dist/test/trials/backup-under-load.js`;
// BACKUPS (default 10).
import { join } from 'node:path';
import { CONTROL_BIN, ControlProcess, removeDir, runNode, scratchDir } from '../support/harness';

const BACKUPS = Number(process.env.BACKUPS ?? 10);

async function main(): Promise<void> {
  const root = scratchDir('trial-backup');
  const control = new ControlProcess(join(root, 'data'));
  await control.start();
  let writing = true;
  let writes = 0;
  const load = (async () => {
    while (writing)
      await control.rest('PUT', `/v1/instances/i-0${(++writes % 5000).toString(16).padStart(16, '0')}/assignment`, { role: 'node' });
  })();
  let restored = 0;
  const failures: string[] = [];
  for (let i = 0; i < BACKUPS; i++) {
    const file = join(root, `b${i}.tar`);
    const made = await runNode(CONTROL_BIN, ['backup', '--data-dir', control.dataDir, '--to', file]);
    const put = made.code === 0 ? await runNode(CONTROL_BIN, ['restore', '--from', file, '--data-dir', join(root, `r${i}`)]) : made;
    if (put.code === 0) restored++;
    else failures.push(put.stderr.trim());
  }
  writing = false;
  await load;
  await control.stop();
  removeDir(root);
  process.stdout.write(`${BACKUPS} backups while serving (${writes} REST writes meanwhile): ${restored} restored and checked\n`);
  for (const f of failures) process.stdout.write(`  failed: ${f}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
