// The HTTP-01 challenge listener: plain HTTP (the ACME server asks over port
// 80), answering /.well-known/acme-challenge/{token} from the store and 404
// to anything else.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError, type Logger } from '../../contract/log';
import { splitHostPort } from '../../contract/address';
import type { Store } from '../store/store';

const CHALLENGE_PATH = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]{1,256})$/;

export interface RunningHttp01Server {
  port: number;
  close(): Promise<void>;
}

export async function startHttp01Server(listen: string, store: Store, log: Logger): Promise<RunningHttp01Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const match = req.method === 'GET' || req.method === 'HEAD' ? CHALLENGE_PATH.exec(path) : null;
    const reply = (code: number, body: string) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (!match) return reply(404, 'not found\n');
    store.getAcmeChallenge(match[1], Date.now()).then(
      (answer) => {
        log.info({ token: match[1], answered: !!answer, from: req.socket.remoteAddress }, 'ACME HTTP-01 challenge requested');
        if (answer) reply(200, answer);
        else reply(404, 'no such challenge\n');
      },
      (err) => {
        log.error({ err: describeError(err) }, 'reading an ACME challenge failed');
        reply(500, 'store unavailable\n');
      },
    );
  });
  const { host, port } = splitHostPort(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot listen for ACME HTTP-01 challenges on ${listen} (acme.http01_listen): ${err.code === 'EACCES' ? 'port below 1024 needs CAP_NET_BIND_SERVICE' : err.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
