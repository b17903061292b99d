// audit [--follow]: who changed what, oldest first; --follow polls with the "after" cursor.
import { Command } from 'commander';
import { stringify } from 'yaml';
import { parseDuration } from '../../contract/duration';
import { query, type AuditEventView, type Page } from '../api';
import type { RestClient } from '../client';
import { usageError } from '../exit-codes';
import { clientOf, examples, formatOf, outputOption, print } from '../kit';
import { formatList, type OutputFormat } from '../output';
import { paint, Progress } from '../terminal';

const PAGE = 1000;

const detailsText = (e: AuditEventView) => (Object.keys(e.details ?? {}).length ? JSON.stringify(e.details) : '');

const AUDIT_COLUMNS = {
  ID: (e: AuditEventView) => String(e.id),
  TIME: (e: AuditEventView) => e.at,
  ACTOR: (e: AuditEventView) => e.actor,
  ACTION: (e: AuditEventView) => (e.action.endsWith('.refused') ? paint('red', e.action) : e.action),
  TARGET: (e: AuditEventView) => e.target,
  DETAILS: detailsText,
};

/** Events after `after`, every page; only the last `keep` are kept (0: all). */
async function eventsAfter(client: RestClient, after: number, target: string | undefined, keep: number): Promise<AuditEventView[]> {
  let events: AuditEventView[] = [];
  const progress = new Progress();
  try {
    for (let cursor = after, seen = 0; ;) {
      const page = await client.get<Page<AuditEventView, number>>(`/v1/audit${query({ after: cursor, limit: PAGE, target })}`);
      events.push(...page.items);
      if (keep > 0 && events.length > keep) events = events.slice(-keep);
      if (page.items.length < PAGE) return events;
      cursor = page.items[page.items.length - 1].id;
      seen += page.items.length;
      progress.update(`reading the audit log: ${seen} events so far…`);
    }
  } finally {
    progress.done();
  }
}

/** One event as a line of its own (for --follow): JSON lines, YAML documents, or columns. */
function eventLine(format: OutputFormat, e: AuditEventView): string {
  if (format === 'json') return `${JSON.stringify(e)}\n`;
  if (format === 'yaml') return `---\n${stringify(e)}`;
  return `${[AUDIT_COLUMNS.ID(e), e.at, e.actor, AUDIT_COLUMNS.ACTION(e), e.target, detailsText(e)].join('  ').trimEnd()}\n`;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

const nonNegative = (flag: string) => (v: string) => {
  if (!/^\d+$/.test(v)) throw usageError(`${flag}: "${v}" is not a whole number`);
  return Number(v);
};

export function auditCommand(): Command {
  const audit = new Command('audit')
    .description('audit events, oldest first: changes, and refused enrollments, calls and requests')
    .option('--target <target>', 'only events about this: an instance id, "settings" or "rule:<id>"')
    .option('-n, --last <n>', 'show the last n events (0: all)', nonNegative('--last'), 50)
    .option('--after <id>', 'only events with an id greater than this', nonNegative('--after'), 0)
    .option('-f, --follow', 'keep printing new events as they happen (Ctrl-C stops)')
    .option(
      '--interval <duration>',
      'how often --follow asks for new events',
      (v) => {
        try {
          return parseDuration(v);
        } catch (err) {
          throw usageError(`--interval: ${(err as Error).message}`);
        }
      },
      2000,
    )
    .addOption(outputOption())
    .action(async (flags: { target?: string; last: number; after: number; follow?: boolean; interval: number }, cmd: Command) => {
      const client = clientOf(cmd);
      const format = formatOf(cmd);
      const events = await eventsAfter(client, flags.after, flags.target, flags.last);
      if (!flags.follow) return print(formatList(format, events, events, AUDIT_COLUMNS, 'no audit events'));
      for (const e of events) print(eventLine(format, e));
      let cursor = events.length ? events[events.length - 1].id : flags.after;
      const stop = () => process.exit(0);
      process.once('SIGINT', stop).once('SIGTERM', stop);
      for (;;) {
        await sleep(flags.interval);
        for (const e of await eventsAfter(client, cursor, flags.target, 0)) {
          print(eventLine(format, e));
          cursor = e.id;
        }
      }
    });
  examples(
    audit,
    'teleboot audit --last 20',
    'teleboot audit --target i-0123456789abcdef0',
    'teleboot audit --follow -o json | jq -c \'select(.action | endswith(".refused"))\'',
  );
  return audit;
}
