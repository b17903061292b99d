// The Teleport version this host runs, for the status report (the control
// server's release rules judge what hosts run, not only what they should).
import { stat } from 'node:fs/promises';
import { isTeleportVersion } from '../contract/teleport-release';
import { runningVersion } from './diag';
import { reportedVersion } from './teleport-release';

/** The installed binary's answer, kept while the file (through its links) is the same one. */
let installed: { key: string; version: string | undefined } | undefined;

/**
 * The running Teleport's own version (diag /metrics), else what the
 * installed binary reports (Teleport stopped, or an old one without the
 * metric); undefined when neither says. The binary is asked again only when
 * it changed (an upgrade switches the link to another file): running it at
 * every heartbeat would cost a process start each time.
 */
export async function hostTeleportVersion(teleport: { diagAddr: string; binary: string }): Promise<string | undefined> {
  const running = await runningVersion(teleport.diagAddr);
  if (running !== undefined && isTeleportVersion(running)) return running;
  const file = await stat(teleport.binary).catch(() => undefined);
  if (!file) return undefined;
  const key = `${teleport.binary}\n${file.dev}:${file.ino}:${file.size}:${file.mtimeMs}`;
  if (installed?.key !== key) installed = { key, version: (await reportedVersion(teleport.binary))?.version };
  return installed.version;
}
