// The TLS material of the listeners: configured files, or a CA and server
// certificate generated on first start under <data_dir>/tls and reused after.
// Both halves of a key pair are present and belong together, or both are
// absent; anything else stops the server with the file named. A key file
// that exists is never written over.
import { createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../contract/files';
import type { Logger } from '../contract/log';
import { StartRefused } from './cluster-identity';
import type { ControlConfig } from './config';
import { dataDirFiles, restoreHint, writeNewFile } from './data-dir';
import { createCertificateAuthority, issueServerCertificate, loadCertificateAuthority, type CertificateAuthority } from './pki';

export interface TlsMaterial {
  ca: CertificateAuthority;
  certPem: string;
  keyPem: string;
}

export interface PairFiles {
  what: string;
  certFile: string;
  keyFile: string;
}

interface PairPem {
  certPem: string;
  keyPem: string;
  cert: X509Certificate;
}

function readPem(path: string, what: string, parse: (pem: string) => unknown, dataDir: string): string {
  const pem = readFileSync(path, 'utf8');
  try {
    parse(pem);
  } catch (err) {
    throw new StartRefused(`${path} is not a readable ${what} (${(err as Error).message || 'empty'}): ${restoreHint(dataDir)}`);
  }
  return pem;
}

/** Both halves, checked to parse and to belong together; undefined when both are absent. */
export function readPair(files: PairFiles, dataDir: string): PairPem | undefined {
  const certThere = existsSync(files.certFile);
  const keyThere = existsSync(files.keyFile);
  if (!certThere && !keyThere) return undefined;
  if (certThere !== keyThere) {
    const [there, missing] = certThere ? [files.certFile, files.keyFile] : [files.keyFile, files.certFile];
    throw new StartRefused(
      `the ${files.what} is half there: ${there} exists but ${missing} is missing. A new pair would replace the one ` +
        `agents trust, so teleboot-control stops here: ${restoreHint(dataDir)}`,
    );
  }
  let cert: X509Certificate | undefined;
  let key: KeyObject | undefined;
  const certPem = readPem(files.certFile, 'PEM certificate', (pem) => (cert = new X509Certificate(pem)), dataDir);
  const keyPem = readPem(files.keyFile, 'PEM private key', (pem) => (key = createPrivateKey(pem)), dataDir);
  if (!cert!.checkPrivateKey(key!))
    throw new StartRefused(
      `${files.certFile} and ${files.keyFile} do not belong together: the certificate is not for this key. ${restoreHint(dataDir)}`,
    );
  return { certPem, keyPem, cert: cert! };
}

function coversNames(cert: X509Certificate, names: string[]): boolean {
  const stillValid = new Date(cert.validTo).getTime() > Date.now() + 7 * 86_400_000;
  return stillValid && names.every((n) => (/^[\d.]+$|:/.test(n) ? cert.checkIP(n) : cert.checkHost(n)) !== undefined);
}

/**
 * Loads the CA and the server's key pair. `fresh`: nothing was issued from
 * this data directory yet, so a missing CA may be generated.
 */
export async function loadTlsMaterial(config: ControlConfig, log: Logger, fresh = true): Promise<TlsMaterial> {
  const files = dataDirFiles(config);
  const caFiles = { what: 'CA key pair', certFile: files.caCert, keyFile: files.caKey };
  let ca: CertificateAuthority;
  const caPair = readPair(caFiles, config.dataDir);
  if (caPair) {
    ca = await loadCertificateAuthority(caPair.certPem, caPair.keyPem).catch((err: Error) => {
      throw new StartRefused(`${files.caKey} is not an ECDSA P-256 CA key (${err.message}): ${restoreHint(config.dataDir)}`);
    });
  } else if (config.tls.caFile) {
    throw new StartRefused(`tls.ca_file ${files.caCert} and tls.ca_key_file ${files.caKey} do not exist`);
  } else if (!fresh) {
    throw new StartRefused(
      `the CA (${files.caCert}, ${files.caKey}) is missing, but the database ${config.storePath} already issued ` +
        `certificates and tokens from it: a new CA would cut off every agent. ${restoreHint(config.dataDir)}`,
    );
  } else {
    ca = await createCertificateAuthority('teleboot-control CA');
    writeNewFile(files.caKey, ca.keyPem, 0o600);
    writeNewFile(files.caCert, ca.certPem, 0o644);
    log.info({ caFile: files.caCert }, 'generated a new CA; give agents this file as control.ca_file');
  }

  const serverFiles = { what: 'server key pair', certFile: files.serverCert, keyFile: files.serverKey };
  const server = readPair(serverFiles, config.dataDir);
  if (config.tls.certFile) {
    if (!server) throw new StartRefused(`tls.cert_file ${files.serverCert} and tls.key_file ${files.serverKey} do not exist`);
    return { ca, certPem: server.certPem, keyPem: server.keyPem };
  }
  if (server && coversNames(server.cert, config.tls.serverNames)) return { ca, certPem: server.certPem, keyPem: server.keyPem };
  // A new certificate for the key there is (its names changed, or it expires soon); a new key only when there is none.
  const pair = await issueServerCertificate(ca, config.tls.serverNames, undefined, server?.keyPem);
  if (!server) writeNewFile(files.serverKey, pair.keyPem, 0o600);
  await writeFileAtomic(files.serverCert, pair.certPem, { mode: 0o644 });
  log.info({ certFile: files.serverCert, names: config.tls.serverNames }, 'issued the server certificate');
  return { ca, ...pair };
}

/** The join token agents enroll with: read from its file, or generated there on first start. */
export async function loadJoinToken(path: string, log: Logger): Promise<string> {
  if (existsSync(path)) {
    const token = readFileSync(path, 'utf8').trim();
    if (token.length < 16) throw new Error(`the join token in ${path} is shorter than 16 characters; use a long random value`);
    return token;
  }
  const token = randomBytes(24).toString('base64url');
  writeNewFile(path, token + '\n', 0o600);
  log.info({ path }, 'generated a join token; give agents this file as enrollment.join_token_file');
  return token;
}
