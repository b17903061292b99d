// The TLS material of the listeners: configured files, or a CA and server
// certificate generated on first start under <data_dir>/tls and reused after.
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../contract/files';
import type { Logger } from '../contract/log';
import type { ControlConfig } from './config';
import { createCertificateAuthority, issueServerCertificate, loadCertificateAuthority, type CertificateAuthority } from './pki';

export interface TlsMaterial {
  ca: CertificateAuthority;
  certPem: string;
  keyPem: string;
}

const read = (path: string) => readFileSync(path, 'utf8');

function coversNames(certPem: string, names: string[]): boolean {
  const cert = new X509Certificate(certPem);
  const stillValid = new Date(cert.validTo).getTime() > Date.now() + 7 * 86_400_000;
  return stillValid && names.every((n) => (/^[\d.]+$|:/.test(n) ? cert.checkIP(n) : cert.checkHost(n)) !== undefined);
}

export async function loadTlsMaterial(config: ControlConfig, log: Logger): Promise<TlsMaterial> {
  const dir = join(config.dataDir, 'tls');
  const caFile = config.tls.caFile ?? join(dir, 'ca.pem');
  const caKeyFile = config.tls.caKeyFile ?? join(dir, 'ca-key.pem');
  let ca: CertificateAuthority;
  if (existsSync(caFile) && existsSync(caKeyFile)) {
    ca = await loadCertificateAuthority(read(caFile), read(caKeyFile));
  } else if (config.tls.caFile) {
    throw new Error(`tls.ca_file ${caFile} or tls.ca_key_file ${caKeyFile} does not exist`);
  } else {
    ca = await createCertificateAuthority('teleboot-control CA');
    await writeFileAtomic(caKeyFile, ca.keyPem, { mode: 0o600 });
    await writeFileAtomic(caFile, ca.certPem, { mode: 0o644 });
    log.info({ caFile }, 'generated a new CA; give agents this file as control.ca_file');
  }

  if (config.tls.certFile && config.tls.keyFile) {
    return { ca, certPem: read(config.tls.certFile), keyPem: read(config.tls.keyFile) };
  }
  const certFile = join(dir, 'server.pem');
  const keyFile = join(dir, 'server-key.pem');
  if (existsSync(certFile) && existsSync(keyFile) && coversNames(read(certFile), config.tls.serverNames)) {
    return { ca, certPem: read(certFile), keyPem: read(keyFile) };
  }
  const pair = await issueServerCertificate(ca, config.tls.serverNames);
  await writeFileAtomic(keyFile, pair.keyPem, { mode: 0o600 });
  await writeFileAtomic(certFile, pair.certPem, { mode: 0o644 });
  log.info({ certFile, names: config.tls.serverNames }, 'generated the server certificate');
  return { ca, ...pair };
}

/** The join token agents enroll with: read from its file, or generated there on first start. */
export async function loadJoinToken(path: string, log: Logger): Promise<string> {
  if (existsSync(path)) {
    const token = read(path).trim();
    if (token.length < 16) throw new Error(`the join token in ${path} is shorter than 16 characters; use a long random value`);
    return token;
  }
  const token = randomBytes(24).toString('base64url');
  await writeFileAtomic(path, token + '\n', { mode: 0o600 });
  log.info({ path }, 'generated a join token; give agents this file as enrollment.join_token_file');
  return token;
}
