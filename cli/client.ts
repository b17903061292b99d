// The REST client: HTTPS verified against the CA file, the bearer token, and
// every failure turned into a message that says what to do (and an exit code).
import { request } from 'node:https';
import { VERSION } from '../contract/version';
import { CliError, EXIT } from './exit-codes';
import { ENV, type Connection } from './connection';

const TIMEOUT_MS = 30_000;

/** Certificate verification failures: the server's chain does not lead to the CA we trust. */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);

interface ErrorBody {
  message?: string;
}

export class RestClient {
  constructor(readonly connection: Connection) {}

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  /** A document with its ETag (settings, rules), to change it with If-Match: nobody else's change in between is overwritten. */
  async getVersioned<T>(path: string): Promise<{ value: T; etag: string | undefined }> {
    let etag: string | undefined;
    const value = await this.call<T>('GET', path, undefined, {}, (e) => (etag = e));
    return { value, etag };
  }

  async call<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    onEtag?: (etag: string | undefined) => void,
  ): Promise<T> {
    const { status, json, isJson, etag } = await this.send(method, path, body, headers);
    onEtag?.(etag);
    if (!isJson && status !== 204)
      throw new CliError(
        `${this.connection.addr} answered HTTP ${status}, but not as teleboot-control's REST API; is that its rest_listen address (not the gRPC port)?`,
        EXIT.unreachable,
      );
    if (status >= 200 && status < 300) return json as T;
    throw this.refusal(method, path, status, json as ErrorBody | undefined);
  }

  private send(
    method: string,
    path: string,
    body: unknown,
    headers: Record<string, string>,
  ): Promise<{ status: number; json: unknown; isJson: boolean; etag: string | undefined }> {
    const { addr, caCert, token } = this.connection;
    if (!token)
      return Promise.reject(
        new CliError(
          `no API token: run "teleboot login", set ${ENV.token}, or pass --token (the control server's admin-token file)`,
          EXIT.access,
        ),
      );
    const url = new URL(path, addr);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolveSend, reject) => {
      const req = request(
        url,
        {
          method,
          ...(caCert ? { ca: caCert.pem } : {}),
          timeout: TIMEOUT_MS,
          headers: {
            authorization: `Bearer ${token.value}`,
            accept: 'application/json',
            'user-agent': `teleboot/${VERSION}`,
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => reject(this.transportError(err)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = { message: text.slice(0, 200) };
            }
            const isJson = /^application\/json/i.test(res.headers['content-type'] ?? '');
            resolveSend({ status: res.statusCode ?? 0, json, isJson, etag: res.headers.etag });
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(this.transportError(err)));
      req.end(payload);
    });
  }

  /** What went wrong before an HTTP answer, said so that the operator knows what to fix. */
  private transportError(err: Error): CliError {
    const { addr, caCert } = this.connection;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const unreachable = (message: string) => new CliError(message, EXIT.unreachable);
    if (UNTRUSTED.has(code)) {
      return unreachable(
        caCert
          ? `the server's certificate is not signed by CA ${caCert.path} (from ${caCert.from}); pass --ca-cert with the control server's tls/ca.pem`
          : `the server's certificate at ${addr} is not signed by a CA this machine trusts; pass --ca-cert with the control server's tls/ca.pem (or set ${ENV.caCert})`,
      );
    }
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
      return unreachable(
        `the server's certificate does not name ${new URL(addr).hostname}: ${err.message}; connect with a name or address the certificate holds (the control server's tls.server_names)`,
      );
    if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID')
      return unreachable(
        `the server's certificate at ${addr} is ${code === 'CERT_HAS_EXPIRED' ? 'expired' : 'not yet valid'}; check the clocks, or renew the control server's certificate`,
      );
    if (code === 'ECONNREFUSED')
      return unreachable(
        `cannot connect to ${addr}: connection refused. Is teleboot-control running and listening there (its rest_listen)? Pass --addr or set ${ENV.addr}`,
      );
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return unreachable(`cannot resolve the host of ${addr}; check --addr or ${ENV.addr}`);
    if (code === 'ETIMEDOUT' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH')
      return unreachable(`no answer from ${addr} (${code}); is the address right, and does a firewall let you through to it?`);
    if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(err.message))
      return unreachable(
        `${addr} does not answer TLS; is that the control server's REST address (rest_listen), not its gRPC or a plain-HTTP port?`,
      );
    return unreachable(`cannot talk to ${addr}: ${err.message}`);
  }

  /** An HTTP error answer, said so that the operator knows what to fix. */
  private refusal(method: string, path: string, status: number, body: ErrorBody | undefined): CliError {
    const said = body?.message ?? `HTTP ${status}`;
    const { token } = this.connection;
    if (status === 401)
      return new CliError(
        `the control server refused the API token (from ${token?.from ?? 'nowhere'}): ${said}. It is unknown, revoked or expired; run "teleboot login" with a valid token, or set ${ENV.token}`,
        EXIT.access,
      );
    if (status === 403) {
      const needs = /needs (\w+)/.exec(said)?.[1];
      const has = /has scope (\w+)/.exec(said)?.[1];
      const what = needs
        ? `this needs an API token with scope ${needs}${has ? ` (yours has ${has})` : ''}`
        : 'the API token lacks the scope this needs';
      return new CliError(
        `${what}: ${said}. An admin can create one: teleboot tokens api create --name NAME --scope ${needs ?? 'operator'}`,
        EXIT.access,
      );
    }
    if (status === 404) {
      const instance = /^\/v1\/instances\/([^/?]+)/.exec(path)?.[1];
      if (instance && !/^no route/.test(said))
        return new CliError(
          `instance ${decodeURIComponent(instance)} not found; "teleboot instances ls" lists the known ones (an instance appears when it enrolls or is assigned)`,
          EXIT.notFound,
        );
      return new CliError(`${said}`, EXIT.notFound);
    }
    if (status === 409 && /If-Match/.test(said))
      return new CliError(
        `someone else changed them while this command ran, so nothing was saved: run the command again (it reads them anew). The server said: ${said}`,
        EXIT.failed,
      );
    if (status >= 500) return new CliError(`the control server failed on ${method} ${path}: ${said}`, EXIT.failed);
    return new CliError(`the control server refused ${method} ${path} (${status}): ${said}`, EXIT.failed);
  }
}
