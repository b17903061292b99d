// Trials behind docs/SECURITY.md "Damaged data": a data directory made by a
// real first start (with 300 assigned instances), damaged in each way many
// times (random cut points and pages), and `teleboot-control serve` run on
// each copy. Prints one row per kind of damage: tries, and what happened.
// Not a test (it takes minutes): `npx tsc -p tsconfig.json && node dist/test/trials/damaged-data.js`.
// TRIALS (default 20) sets the count of the randomised kinds.
import { closeSync, copyFileSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION } from '../../control/store/migrations';
import { ControlProcess, removeDir } from '../support/harness';
import { copyDataDir, removeStore, serveExpectingRefusal, startedDataDir } from '../support/control-data';

const TRIALS = Number(process.env.TRIALS ?? 20);

interface Row {
  damage: string;
  tries: number;
  outcomes: Map<string, number>;
}

/** Every row of every table readable: what a server that starts would serve. */
function allRowsReadable(path: string): boolean {
  const db = new Database(path, { readonly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
    for (const table of tables) db.prepare(`SELECT * FROM "${table}"`).all();
    return true;
  } catch {
    return false;
  } finally {
    db.close();
  }
}

async function trial(base: string, damage: (dir: string) => void, refusal: (dir: string) => RegExp): Promise<string> {
  const dir = copyDataDir(base, 'trial');
  try {
    damage(dir);
    const r = await serveExpectingRefusal(dir, [], 30_000);
    if (r.code === 1 && refusal(dir).test(r.stderr) && /teleboot-control restore/.test(r.stderr))
      return 'refused, naming the file and the restore';
    if (r.code === 1) return `refused otherwise: ${r.stderr.trim().slice(0, 160)}`;
    if (r.code === null) {
      const intact = allRowsReadable(join(dir, 'control.db'));
      return intact ? 'served (every record still readable)' : 'SERVED ON DAMAGED DATA';
    }
    return `exit ${r.code}: ${r.stderr.trim().slice(0, 160)}`;
  } finally {
    removeDir(join(dir, '..'));
  }
}

function garblePage(path: string, page: number): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(4096, randomInt(256)), 0, 4096, page * 4096);
  closeSync(fd);
}

async function main(): Promise<void> {
  const started = Date.now();
  const [base, other] = await Promise.all([startedDataDir('trials-base'), startedDataDir('trials-other')]);
  // Some fleet in the store, so that damage lands on real records.
  const control = new ControlProcess(base);
  await control.start();
  for (let i = 0; i < 300; i++)
    await control.rest('PUT', `/v1/instances/i-0${i.toString(16).padStart(16, '0')}/assignment`, { role: i % 10 ? 'node' : 'proxy' });
  await control.stop();
  const pages = statSync(join(base, 'control.db')).size / 4096;
  const file = (dir: string, f: string) => join(dir, f).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const kinds: Array<[string, number, (dir: string) => void, (dir: string) => RegExp]> = [
    ['control.db deleted (with -wal, -shm)', 5, removeStore, (d) => new RegExp(`${file(d, 'control.db')} is missing or empty`)],
    [
      'control.db emptied (0 bytes)',
      5,
      (d) => truncateSync(join(d, 'control.db'), 0),
      (d) => new RegExp(`${file(d, 'control.db')} is missing or empty`),
    ],
    [
      "another cluster's control.db",
      5,
      (d) => copyFileSync(join(other, 'control.db'), join(d, 'control.db')),
      (d) => new RegExp(`${file(d, 'control.db')} belongs to cluster`),
    ],
    ['cluster-id deleted', 5, (d) => rmSync(join(d, 'cluster-id')), (d) => new RegExp(`${file(d, 'cluster-id')} is missing`)],
    ['tls/ca.pem deleted', 5, (d) => rmSync(join(d, 'tls/ca.pem')), (d) => new RegExp(`${file(d, 'tls/ca.pem')} is missing`)],
    ['tls/ca-key.pem deleted', 5, (d) => rmSync(join(d, 'tls/ca-key.pem')), (d) => new RegExp(`${file(d, 'tls/ca-key.pem')} is missing`)],
    [
      'tls/server-key.pem deleted',
      5,
      (d) => rmSync(join(d, 'tls/server-key.pem')),
      (d) => new RegExp(`${file(d, 'tls/server-key.pem')} is missing`),
    ],
    [
      "another cluster's tls/ca.pem",
      5,
      (d) => copyFileSync(join(other, 'tls/ca.pem'), join(d, 'tls/ca.pem')),
      (d) => new RegExp(`${file(d, 'tls/ca.pem')} and .* do not belong together`),
    ],
    [
      'tls/ca-key.pem cut at a random byte',
      TRIALS,
      (d) => {
        const key = readFileSync(join(d, 'tls/ca-key.pem'));
        writeFileSync(join(d, 'tls/ca-key.pem'), key.subarray(0, randomInt(key.length - 1)));
      },
      (d) => new RegExp(`${file(d, 'tls/ca-key.pem')} is not a readable PEM private key`),
    ],
    [
      'tls/server.pem cut at a random byte',
      TRIALS,
      (d) => {
        const cert = readFileSync(join(d, 'tls/server.pem'));
        writeFileSync(join(d, 'tls/server.pem'), cert.subarray(0, randomInt(cert.length - 1)));
      },
      (d) => new RegExp(`${file(d, 'tls/server.pem')} is not a readable PEM certificate`),
    ],
    [
      `control.db cut at a random byte (of ${pages} pages)`,
      TRIALS,
      (d) => truncateSync(join(d, 'control.db'), 1 + randomInt(statSync(join(d, 'control.db')).size - 1)),
      (d) => new RegExp(`${file(d, 'control.db')}: `),
    ],
    [
      'one random page of control.db overwritten',
      TRIALS,
      (d) => garblePage(join(d, 'control.db'), randomInt(pages)),
      (d) => new RegExp(`${file(d, 'control.db')}: `),
    ],
    [
      'control.db from a newer release (schema version + 1)',
      5,
      (d) => {
        const db = new Database(join(d, 'control.db'));
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)').run(SCHEMA_VERSION + 1, 'future');
        db.close();
      },
      (d) => new RegExp(`${file(d, 'control.db')}: its schema version is ${SCHEMA_VERSION + 1}, newer`),
    ],
  ];
  const rows: Row[] = [];
  for (const [damage, tries, act, refusal] of kinds) {
    const row: Row = { damage, tries, outcomes: new Map() };
    for (let i = 0; i < tries; i++) {
      const outcome = await trial(base, act, refusal);
      row.outcomes.set(outcome, (row.outcomes.get(outcome) ?? 0) + 1);
    }
    rows.push(row);
    process.stderr.write(`${damage}: ${[...row.outcomes].map(([o, n]) => `${n} ${o}`).join('; ')}\n`);
  }
  removeDir(join(base, '..'));
  removeDir(join(other, '..'));
  process.stdout.write('| What we tried | How often | What happened |\n|---|---|---|\n');
  for (const row of rows)
    process.stdout.write(`| ${row.damage} | ${row.tries} | ${[...row.outcomes].map(([o, n]) => `${n}: ${o}`).join('; ')} |\n`);
  process.stdout.write(`\n(${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
