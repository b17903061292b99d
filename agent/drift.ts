// Drift: teleport.yaml, the unit or /etc/default/teleport changed by hand
// after the agent wrote them. The agent keeps what it wrote (hash and text,
// in its private state directory, 0600 like the files themselves) so that it
// can tell a hand edit from its own write and show it as a diff, also after
// a restart of the agent.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../contract/files';
import { unifiedDiff } from '../contract/line-diff';
import { describeError, type Logger } from '../contract/log';
import { maskLines } from '../contract/secret-mask';

export interface FileDrift {
  path: string;
  /** Unified diff from what the agent wrote to what is there now, secrets masked. */
  diff: string;
}

export interface WatchedFile {
  path: string;
  content: string;
}

interface WrittenRecord {
  /** The generation whose convergence last wrote these files. */
  generation: number;
  files: { [path: string]: { sha256: string; content: string } };
}

export const WRITTEN_FILES_RECORD = 'written-files.json';
/** A diff longer than this is cut (the control server refuses more). */
export const MAX_DIFF_CHARS = 16_384;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await fs.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** A diff bounded to MAX_DIFF_CHARS, cut at a line with a note saying so. */
function bounded(diff: string): string {
  if (diff.length <= MAX_DIFF_CHARS) return diff;
  const note = '... (diff cut: too long)\n';
  const cut = diff.slice(0, MAX_DIFF_CHARS - note.length);
  return cut.slice(0, cut.lastIndexOf('\n') + 1) + note;
}

/** What the agent last wrote of the watched files, and whether they still hold it. */
export class WrittenFiles {
  private record: WrittenRecord | undefined;
  private loaded = false;

  constructor(
    private readonly stateDir: string,
    private readonly log: Logger,
  ) {}

  private get file(): string {
    return join(this.stateDir, WRITTEN_FILES_RECORD);
  }

  private async load(): Promise<WrittenRecord | undefined> {
    if (this.loaded) return this.record;
    this.loaded = true;
    try {
      const text = await readIfPresent(this.file);
      const parsed = text === undefined ? undefined : (JSON.parse(text) as WrittenRecord);
      if (parsed && typeof parsed.generation === 'number' && parsed.files && typeof parsed.files === 'object') this.record = parsed;
    } catch (err) {
      // Unreadable: drift cannot be told until the next convergence writes it afresh.
      this.log.warn({ file: this.file, err: describeError(err) }, 'the record of written files cannot be read; starting a new one');
    }
    return this.record;
  }

  /** The generation that last wrote the files; undefined before any. */
  async generation(): Promise<number | undefined> {
    return (await this.load())?.generation;
  }

  /** Watched files whose content is not what the agent wrote, each with its diff (secrets masked). */
  async drift(secrets: readonly string[] = []): Promise<FileDrift[]> {
    const record = await this.load();
    if (!record) return [];
    const out: FileDrift[] = [];
    for (const [path, written] of Object.entries(record.files)) {
      let now: string | undefined;
      try {
        now = await readIfPresent(path);
      } catch (err) {
        // Made unreadable (its mode or owner changed by hand): drift too, with the reason for a diff.
        out.push({ path, diff: `cannot read ${path} to compare it: ${describeError(err)}\n` });
        continue;
      }
      if (now !== undefined && sha256(now) === written.sha256) continue;
      const diff = unifiedDiff(written.content, now ?? '', {
        from: `${path} (as teleboot wrote it)`,
        to: now === undefined ? `${path} (removed)` : `${path} (now)`,
      });
      out.push({ path, diff: bounded(maskLines(diff.split('\n'), secrets).join('\n')) });
    }
    return out;
  }

  /**
   * Remembers what a convergence of `generation` left in the watched files:
   * `files` as written; the paths in `kept` (drifted files left as they are)
   * keep their earlier entry, so that they still show as drifted.
   */
  async remember(generation: number, files: WatchedFile[], kept: ReadonlySet<string> = new Set()): Promise<void> {
    const before = (await this.load())?.files ?? {};
    const next: WrittenRecord = { generation, files: {} };
    for (const f of files)
      next.files[f.path] = kept.has(f.path) && before[f.path] ? before[f.path] : { sha256: sha256(f.content), content: f.content };
    // Most convergences change nothing: no write then.
    if (this.record && JSON.stringify(this.record) === JSON.stringify(next)) return;
    await writeFileAtomic(this.file, JSON.stringify(next), { mode: 0o600 });
    this.record = next;
  }
}
