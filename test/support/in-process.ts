// The control server in the test's own process (real sockets, real TLS, a
// scratch data directory), for tests that call its REST and gRPC faces.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadControlConfig, type ControlFlags } from '../../control/config';
import { startControlServer, type RunningControlServer } from '../../control/server';
import { createLogger } from '../../contract/log';
import { removeDir, restRequest, scratchDir, type RestResponse } from './harness';

export interface InProcessControl {
  server: RunningControlServer;
  dir: string;
  /** The admin API token generated on first start. */
  adminToken: string;
  /** The bootstrap join token generated on first start. */
  joinToken: string;
  /** A REST call as admin. */
  rest<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<RestResponse<T>>;
  close(): Promise<void>;
}

/** A control server on a new scratch directory, or on `dir` (a data directory a previous one left). */
export async function startInProcessControl(name: string, flags: ControlFlags = {}, dir = scratchDir(name)): Promise<InProcessControl> {
  const config = loadControlConfig({ 'data-dir': dir, 'grpc-listen': '127.0.0.1:0', 'rest-listen': '127.0.0.1:0', ...flags });
  const server = await startControlServer(config, createLogger('test', 'silent'));
  const adminToken = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
  const joinToken = readFileSync(config.joinTokenFile, 'utf8').trim();
  const port = Number(new URL(server.restUrl).port);
  return {
    server,
    dir,
    adminToken,
    joinToken,
    rest: (method, path, body, headers) => restRequest({ port, ca: server.caPem, token: adminToken }, method, path, body, headers),
    async close() {
      await server.close();
      removeDir(dir);
    },
  };
}
