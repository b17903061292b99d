// Durations in config files are written the way Teleport and Go write them:
// "500ms", "30s", "5m", "1h30m".

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_RE = /^(\d+(?:\.\d+)?(?:ms|s|m|h))+$/;

export const DURATION_PATTERN = DURATION_RE.source;

/** Milliseconds in a duration string; throws on anything else. */
export function parseDuration(text: string): number {
  if (!DURATION_RE.test(text)) {
    throw new Error(`"${text}" is not a duration: write it like 500ms, 30s, 5m or 1h30m`);
  }
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * UNITS[m[2]];
  return total;
}
