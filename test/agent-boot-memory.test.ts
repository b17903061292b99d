// Once its boot is over, the agent gives back what only the boot needed
// (agent/boot-memory.ts): V8 shrinks its heap at once, and the pages of the
// executable that the boot touched are no longer mapped. Only read-only
// mappings of that one file with no private copy of a page are dropped,
// through the Node-API addon the package installs.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { executableFile, parseSmaps, releasable, releaseBootMemory, releaseBootMemoryLogged } from '../agent/boot-memory';
import { buildReleaseMemoryAddon } from '../packaging/build/addon';
import { REPO, removeDir, scratchDir } from './support/harness';

const dir = scratchDir('boot-memory');
t.teardown(() => removeDir(dir));

/** A /proc/PID/smaps text: each mapping's header line, then its Rss and Anonymous in kB. */
const smaps = (mappings: Array<[header: string, rssKb: number, anonymousKb: number]>) =>
  mappings.map(([header, rss, anon]) => `${header}\nRss: ${rss} kB\nAnonymous: ${anon} kB\n`).join('');

const SMAPS = smaps([
  ['00400000-00b6f000 r--p 00000000 fd:01 1234 /usr/bin/teleboot-agent', 2684, 0],
  ['00b72000-02601000 r-xp 00772000 fd:01 1234 /usr/bin/teleboot-agent', 22272, 0],
  ['02601000-0563a000 r--p 02201000 fd:01 1234 /usr/bin/teleboot-agent', 11964, 0],
  ['0563a000-0563d000 r--p 05239000 fd:01 1234 /usr/bin/teleboot-agent', 12, 12],
  ['0563d000-0565c000 rw-p 0523c000 fd:01 1234 /usr/bin/teleboot-agent', 124, 92],
  ['7f0000000000-7f0000001000 r--p 00000000 fd:01 1234 /usr/bin/teleboot-agent', 0, 0],
  ['7f8dfb600000-7f8dfb792000 r-xp 0124f000 fd:01 1234 /usr/bin/teleboot-agent', 1024, 0],
  ['7f8e02144000-7f8e0229a000 r-xp 00028000 fd:01 5678 /usr/lib/x86_64-linux-gnu/libc.so.6', 1304, 0],
  ['7f8e03000000-7f8e03100000 r--s 00000000 fd:01 1234 /usr/bin/teleboot-agent', 100, 0],
  ['7f8e04000000-7f8e04100000 r--p 00000000 fd:02 1234 /other/device/same/inode', 100, 0],
]);

t.test('only resident, read-only, private mappings of the executable without copied pages are chosen', async (t) => {
  const chosen = releasable(parseSmaps(SMAPS), { device: 'fd:01', inode: 1234 });
  t.same(
    chosen.map((m) => `${m.start.toString(16)} ${m.perms} ${m.rssKb}`),
    ['400000 r--p 2684', 'b72000 r-xp 22272', '2601000 r--p 11964', '7f8dfb600000 r-xp 1024'],
    'not the RELRO page (copied by the loader), the writable data, an empty mapping, a shared one, another file',
  );
});

t.test('the executable is the file whose mapping holds its program headers (AT_PHDR), as smaps names it', async (t) => {
  // On an overlay file system stat(2) of the path gives the overlay's device and inode, smaps the file beneath.
  const auxv = Buffer.alloc(48);
  auxv.writeBigUInt64LE(6n, 0); // AT_PAGESZ
  auxv.writeBigUInt64LE(4096n, 8);
  auxv.writeBigUInt64LE(3n, 16); // AT_PHDR
  auxv.writeBigUInt64LE(0x400040n, 24);
  t.same(executableFile(parseSmaps(SMAPS), auxv), { device: 'fd:01', inode: 1234 });
  t.equal(executableFile(parseSmaps(SMAPS), auxv.subarray(0, 16)), undefined, 'no AT_PHDR: none');

  const own = parseSmaps(readFileSync('/proc/self/smaps', 'utf8'));
  const file = executableFile(own, readFileSync('/proc/self/auxv'));
  const paths = new Set(own.filter((m) => m.inode === file?.inode && m.device === file?.device).map((m) => m.path));
  t.same([...paths], [realpathSync(process.execPath)], 'in this process: the node binary running the test');
});

t.test('a process releases its executable pages and runs on, touching code it had not run before', async (t) => {
  const addon = buildReleaseMemoryAddon(join(dir, 'release-memory.node'));
  const script = join(dir, 'release.js');
  writeFileSync(
    script,
    `const { releaseBootMemory } = require(${JSON.stringify(join(REPO, 'dist/agent/boot-memory.js'))});
     require('node:crypto').generateKeyPairSync('ec', { namedCurve: 'P-256' });
     const released = releaseBootMemory([${JSON.stringify(addon)}]);
     // After the release: built-ins never loaded before, Intl (its data is in the executable), a TLS key.
     const zipped = require('node:zlib').gzipSync(Buffer.alloc(100000, 'x'));
     const unzipped = require('node:zlib').gunzipSync(zipped).toString();
     const date = new Intl.DateTimeFormat('de-DE', { timeZone: 'UTC' }).format(new Date(0));
     const key = require('node:crypto').generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
     console.log(JSON.stringify({ released, work: [unzipped.length, date, key.crv] }));`,
  );
  const out = JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8' }));
  t.ok(out.released.mappings >= 2, `${out.released.mappings} mappings released`);
  t.ok(out.released.beforeBytes > 8 * 1048576, `resident before: ${Math.round(out.released.beforeBytes / 1048576)} MiB`);
  t.ok(
    out.released.afterBytes < out.released.beforeBytes / 2,
    `resident right after: ${Math.round(out.released.afterBytes / 1048576)} MiB`,
  );
  t.same(out.work, [100000, '1.1.1970', 'Ed25519'], 'the process works on after the release');
});

t.test('without the addon nothing is released; a broken addon is a warning, and the agent runs on', async (t) => {
  t.equal(releaseBootMemory([join(dir, 'absent.node')]), undefined);
  const broken = join(dir, 'broken.node');
  writeFileSync(broken, 'not a shared object');
  const lines: any[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(chunk.toString()));
        done();
      },
    }),
  );
  releaseBootMemoryLogged(log, [broken]);
  releaseBootMemoryLogged(log, [join(dir, 'absent.node')]);
  t.match(lines[0], { level: 40, msg: /could not be released; the agent runs on/, err: /broken\.node/ });
  t.match(lines[1], { level: 20, msg: /no release-memory\.node beside the executable/ });
});
