// A small POSIX ustar archive of regular files: what a backup is, so that
// `tar -tvf` lists it anywhere. Reading accepts regular files only and
// checks every header's checksum; callers decide which names they take.
const BLOCK = 512;

export interface TarEntry {
  name: string;
  mode: number;
  content: Buffer;
}

function field(header: Buffer, at: number, length: number, value: string): void {
  header.write(value, at, length, 'ascii');
}

const octal = (n: number, width: number) => n.toString(8).padStart(width - 1, '0') + '\0';

function checksum(header: Buffer): number {
  let sum = 0;
  // The checksum field counts as eight spaces.
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
  return sum;
}

export function writeTar(entries: TarEntry[], mtime = Date.now()): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    if (Buffer.byteLength(entry.name) > 99) throw new Error(`tar: name too long: ${entry.name}`);
    const header = Buffer.alloc(BLOCK);
    field(header, 0, 100, entry.name);
    field(header, 100, 8, octal(entry.mode & 0o7777, 8));
    field(header, 108, 8, octal(0, 8));
    field(header, 116, 8, octal(0, 8));
    field(header, 124, 12, octal(entry.content.length, 12));
    field(header, 136, 12, octal(Math.floor(mtime / 1000), 12));
    field(header, 156, 1, '0');
    field(header, 257, 6, 'ustar\0');
    field(header, 263, 2, '00');
    field(header, 148, 8, octal(checksum(header), 7) + ' ');
    blocks.push(header, entry.content, Buffer.alloc((BLOCK - (entry.content.length % BLOCK)) % BLOCK));
  }
  blocks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(blocks);
}

const readOctal = (header: Buffer, at: number, length: number) =>
  parseInt(header.toString('ascii', at, at + length).replace(/[\0 ]+$/, '') || '0', 8);

/** The regular files of a ustar archive; throws on anything else or on a damaged header. */
export function readTar(archive: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  for (let at = 0; at + BLOCK <= archive.length;) {
    const header = archive.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) return entries;
    if (readOctal(header, 148, 8) !== checksum(header)) throw new Error(`damaged archive: bad header checksum at byte ${at}`);
    const name = header.toString('utf8', 0, 100).replace(/\0.*$/s, '');
    const type = String.fromCharCode(header[156]);
    if (type !== '0' && type !== '\0') throw new Error(`unexpected archive member ${name}: not a regular file`);
    const size = readOctal(header, 124, 12);
    const start = at + BLOCK;
    if (start + size > archive.length) throw new Error(`damaged archive: ${name} is cut short`);
    entries.push({ name, mode: readOctal(header, 100, 8), content: Buffer.from(archive.subarray(start, start + size)) });
    at = start + Math.ceil(size / BLOCK) * BLOCK;
  }
  throw new Error('damaged archive: it ends without its end-of-archive blocks');
}
