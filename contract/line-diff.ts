// A unified diff of two small texts (config files), as `diff -u` prints it,
// for showing what was changed by hand on a host. Longest common subsequence
// over lines: quadratic, so texts beyond a bound get a one-line summary.

export interface DiffOptions {
  /** Labels of the --- and +++ lines. */
  from: string;
  to: string;
  /** Unchanged lines around each change (default 3). */
  context?: number;
}

/** Above this many line pairs the diff is summarised rather than computed. */
const MAX_CELLS = 4_000_000;

/** One line of the edit script; `a` and `b`: lines of each text before it. */
type Op = { kind: ' ' | '-' | '+'; line: string; a: number; b: number };

function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** The edit script turning `a` into `b` (common lines kept, the rest removed or added). */
function editScript(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  const w = m + 1;
  // lcs[i * w + j]: length of the longest common subsequence of a[i..] and b[j..].
  const lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i * w + j] = a[i] === b[j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    const at = { a: i, b: j };
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ kind: ' ', line: a[i++], ...at });
      j++;
    } else if (i < n && (j === m || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) ops.push({ kind: '-', line: a[i++], ...at });
    else ops.push({ kind: '+', line: b[j++], ...at });
  }
  return ops;
}

/** `diff -u` output of `before` → `after`; '' when they are equal. */
export function unifiedDiff(before: string, after: string, opts: DiffOptions): string {
  if (before === after) return '';
  const a = splitLines(before);
  const b = splitLines(after);
  const out = [`--- ${opts.from}`, `+++ ${opts.to}`];
  if ((a.length + 1) * (b.length + 1) > MAX_CELLS)
    return [...out, `@@ the files differ (${a.length} and ${b.length} lines: too long to compare line by line) @@`].join('\n') + '\n';
  const ops = editScript(a, b);
  const context = opts.context ?? 3;
  // Lines within `context` of a change are shown; each run of shown lines is a hunk.
  const shown = new Array<boolean>(ops.length).fill(false);
  ops.forEach((o, k) => {
    if (o.kind === ' ') return;
    for (let c = Math.max(0, k - context); c <= Math.min(ops.length - 1, k + context); c++) shown[c] = true;
  });
  for (let k = 0; k < ops.length;) {
    if (!shown[k]) {
      k++;
      continue;
    }
    let end = k;
    while (end < ops.length && shown[end]) end++;
    const hunk = ops.slice(k, end);
    const aLen = hunk.filter((o) => o.kind !== '+').length;
    const bLen = hunk.filter((o) => o.kind !== '-').length;
    out.push(`@@ -${hunk[0].a + (aLen ? 1 : 0)},${aLen} +${hunk[0].b + (bLen ? 1 : 0)},${bLen} @@`);
    for (const o of hunk) out.push(`${o.kind}${o.line}`);
    k = end;
  }
  return out.join('\n') + '\n';
}
