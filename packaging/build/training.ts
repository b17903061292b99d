// The boot the agent's code cache is trained on (packaging/build/sea.ts): a
// first boot of a host with the "node" role, against a local control server
// (dist/control/main.js) with the SSM and IMDS emulators and the tests'
// Teleport stand-in, as the boot bench runs it. Every step of a boot runs in
// it, so the cache holds the functions of every step. Nothing leaves the
// machine; the servers and their files are gone when it returns.
import { nodeInstance } from '../../bench/boot';
import { AWS_ENV } from '../../test/support/harness';
import { startWorld } from '../../test/support/world';
import type { TrainingBoot } from './sea';

/** Runs `build` with a training boot set up, then stops its servers (whether `build` succeeded or not). */
export async function withTrainingBoot<T>(build: (boot: TrainingBoot) => Promise<T>): Promise<T> {
  const world = await startWorld('agent-training');
  try {
    const { files } = await nodeInstance(world);
    return await build({ configFile: files.configFile, env: { ...AWS_ENV } });
  } finally {
    await world.close();
  }
}
