// The details an agent adds to a status report: the Teleport version the
// host runs, Teleport's last log lines when it is not ready, and the files
// changed by hand (drift). Both are shown
// to operators (REST, CLI), so they are bounded, refused with control
// characters (terminal escapes), and masked once more here in case an older
// or broken agent missed a secret.
import { hasControlCharacters, maskLine, maskLines } from '../../contract/secret-mask';
import { isTeleportVersion } from '../../contract/teleport-release';
import type { FileDrift__Output } from '../../proto/gen/teleboot/v1/FileDrift';
import { invalid } from './errors';
import { limited } from './validation';

export const LOG_TAIL_MAX_LINES = 100;
export const LOG_TAIL_MAX_CHARS = 1024;
export const DRIFT_MAX_FILES = 8;
export const DRIFT_MAX_DIFF_CHARS = 16_384;

export interface StatusDetails {
  teleportVersion?: string;
  logTail?: string[];
  drift?: Array<{ path: string; diff: string }>;
}

/** teleport_version, log_tail and drift of a ReportStatusRequest, checked; each absent when empty. */
export function statusDetailsFrom(req: { teleportVersion?: string; logTail?: string[]; drift?: FileDrift__Output[] }): StatusDetails {
  const version = limited('teleport_version', req.teleportVersion ?? '', 64);
  if (version && !isTeleportVersion(version))
    throw invalid('teleport_version', 'must be a Teleport version such as 15.4.2 (empty: unknown)');
  const lines = req.logTail ?? [];
  if (lines.length > LOG_TAIL_MAX_LINES) throw invalid('log_tail', `more than ${LOG_TAIL_MAX_LINES} lines`);
  lines.forEach((line, i) => {
    limited(`log_tail[${i}]`, line, LOG_TAIL_MAX_CHARS);
    if (hasControlCharacters(line.replace(/\t/g, ' '))) throw invalid(`log_tail[${i}]`, 'holds control characters: escape them (\\xNN)');
  });
  const drift = req.drift ?? [];
  if (drift.length > DRIFT_MAX_FILES) throw invalid('drift', `more than ${DRIFT_MAX_FILES} files`);
  const files = drift.map((d, i) => {
    const path = limited(`drift[${i}].path`, d.path, 1024);
    if (!path.startsWith('/') || hasControlCharacters(path))
      throw invalid(`drift[${i}].path`, 'must be an absolute path without control characters');
    const diff = limited(`drift[${i}].diff`, d.diff, DRIFT_MAX_DIFF_CHARS);
    if (hasControlCharacters(diff.replace(/[\n\t]/g, ' ')))
      throw invalid(`drift[${i}].diff`, 'holds control characters other than newline and tab: escape them (\\xNN)');
    return { path, diff: maskLines(diff.split('\n')).join('\n') };
  });
  return {
    ...(version ? { teleportVersion: version } : {}),
    ...(lines.length ? { logTail: lines.map((l) => maskLine(l)) } : {}),
    ...(files.length ? { drift: files } : {}),
  };
}
