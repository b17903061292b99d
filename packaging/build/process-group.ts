// Stopping a process group that a build step or the bench started detached
// (an agent and the Teleport its `once` leaves running).
import { setTimeout as sleep } from 'node:timers/promises';

/** Sends `sig` to the group; false when no process of it is left. */
function signalGroup(pgid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Stops what is left of a process group: TERM, then KILL after 2 s. */
export async function stopProcessGroup(pgid: number): Promise<void> {
  if (!signalGroup(pgid, 'SIGTERM')) return;
  for (let i = 0; i < 40; i++) {
    await sleep(50);
    if (!signalGroup(pgid, 0)) return;
  }
  signalGroup(pgid, 'SIGKILL');
}
