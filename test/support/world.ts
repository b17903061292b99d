// A small AWS world for end-to-end runs, the demo and the benchmark: the
// control server (own process), s3rver holding the proxy certificate, the
// SSM emulator holding join tokens and the CA pin, cluster settings saved.
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { createCertificateAuthority, issueServerCertificate } from '../../control/pki';
import { startImdsEmulator, fakeInstance, type ImdsEmulator, type ImdsInstance } from '../emulators/imds';
import { startSsmEmulator, type SsmEmulator } from '../emulators/ssm';
import { ControlProcess, removeDir, scratchDir, startS3, writeAgentConfig, type AgentFiles, type S3Server } from './harness';

export const CLUSTER = {
  clusterName: 'example',
  authAddr: 'auth.example.internal:3025',
  proxyPublicAddr: 'teleport.example.com:443',
  s3Bucket: 'example-teleport-certs',
  ssmPrefix: '/teleport',
  region: 'us-east-1',
};

export interface World {
  dir: string;
  control: ControlProcess;
  ssm: SsmEmulator;
  s3: S3Server;
  /** Join tokens as published in SSM, by role. */
  tokens: Record<string, string>;
  caPin: string;
  /** A new IMDS emulator for one instance, closed with the world. */
  instance(overrides?: Partial<ImdsInstance>): Promise<ImdsEmulator>;
  /** agent.yaml for an instance, every path inside its own sandbox root. */
  agentConfig(imds: ImdsEmulator, serviceManager: 'systemd' | 'process', heartbeat?: string): Promise<AgentFiles>;
  close(): Promise<void>;
}

/** A certificate chain for the proxy domain, as Let's Encrypt would leave it in S3. */
export async function proxyCertificate(domain: string): Promise<{ fullchain: string; privkey: string }> {
  const ca = await createCertificateAuthority('teleboot test ACME CA');
  const leaf = await issueServerCertificate(ca, [domain], 90);
  return { fullchain: leaf.certPem + ca.certPem, privkey: leaf.keyPem };
}

export async function startWorld(name: string, opts: { controlArgs?: string[] } = {}): Promise<World> {
  const dir = scratchDir(name);
  // Short heartbeats keep the tests quick; agents take the interval from the server.
  const control = new ControlProcess(join(dir, 'control'), opts.controlArgs ?? ['--heartbeat-interval', '1s']);
  const started = await Promise.allSettled([startSsmEmulator(), startS3([CLUSTER.s3Bucket], join(dir, 's3')), control.start()]);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    // Leave nothing behind from a world that could not start.
    await control.stop();
    for (const r of started) if (r.status === 'fulfilled' && r.value) await r.value.close();
    removeDir(dir);
    throw failed.reason;
  }
  const [ssm, s3] = [(started[0] as PromiseFulfilledResult<SsmEmulator>).value, (started[1] as PromiseFulfilledResult<S3Server>).value];
  const tokens = { node: randomBytes(16).toString('hex'), proxy: randomBytes(16).toString('hex') };
  const caPin = `sha256:${createHash('sha256').update(randomBytes(32)).digest('hex')}`;
  for (const [role, token] of Object.entries(tokens)) ssm.put(`/teleport/${CLUSTER.clusterName}/tokens/${role}`, token, 'SecureString');
  ssm.put(`/teleport/${CLUSTER.clusterName}/ca-pin-hash`, caPin, 'String');
  const cert = await proxyCertificate('teleport.example.com');
  await s3.put(CLUSTER.s3Bucket, 'live/teleport.example.com/fullchain.pem', cert.fullchain);
  await s3.put(CLUSTER.s3Bucket, 'live/teleport.example.com/privkey.pem', cert.privkey);
  new X509Certificate(cert.fullchain); // fail early on a broken fixture
  const saved = await control.rest('PATCH', '/v1/settings', CLUSTER);
  if (saved.status !== 200) throw new Error(`saving settings failed: ${JSON.stringify(saved.body)}`);

  const emulators: ImdsEmulator[] = [];
  return {
    dir,
    control,
    ssm,
    s3,
    tokens,
    caPin,
    async instance(overrides = {}) {
      const imds = await startImdsEmulator(fakeInstance(overrides));
      emulators.push(imds);
      return imds;
    },
    agentConfig(imds, serviceManager, heartbeat) {
      return writeAgentConfig({
        control,
        imdsEndpoint: imds.endpoint,
        ssmEndpoint: ssm.endpoint,
        s3Endpoint: s3.endpoint,
        serviceManager,
        heartbeat,
        root: join(dir, imds.instance.instanceId),
      });
    },
    async close() {
      await control.stop();
      await Promise.all([ssm.close(), s3.close(), ...emulators.map((e) => e.close())]);
      if (!process.env.TELEBOOT_KEEP_TEST_FILES) removeDir(dir);
    },
  };
}
