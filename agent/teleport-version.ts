// The Teleport version this host runs, for the status report (the control
// server's release rules judge what hosts run, not only what they should).
import { isTeleportVersion } from '../contract/teleport-release';
import { runningVersion } from './diag';
import { reportedVersion } from './teleport-release';

/**
 * The running Teleport's own version (diag /metrics), else what the
 * installed binary reports (Teleport stopped, or an old one without the
 * metric); undefined when neither says.
 */
export async function hostTeleportVersion(teleport: { diagAddr: string; binary: string }): Promise<string | undefined> {
  const running = await runningVersion(teleport.diagAddr);
  if (running !== undefined && isTeleportVersion(running)) return running;
  return (await reportedVersion(teleport.binary))?.version;
}
