// A small AWS world for end-to-end runs, the demo and the benchmark: the
// control server (own process), s3rver holding the proxy certificate, the
// SSM emulator holding join tokens and the CA pin, cluster settings saved.
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startEc2Emulator, type Ec2Emulator } from '../emulators/ec2';
import { createIdentitySigner } from '../emulators/identity-signer';
import { createCertificateAuthority, issueServerCertificate } from '../../control/pki';
import { startImdsEmulator, fakeInstance, type ImdsEmulator, type ImdsInstance } from '../emulators/imds';
import { startSsmEmulator, type SsmEmulator } from '../emulators/ssm';
import {
  AWS_ENV,
  ControlProcess,
  removeDir,
  scratchDir,
  stopProcessesUnder,
  startS3,
  writeAgentConfig,
  type AgentFiles,
  type S3Server,
} from './harness';

export const CLUSTER = {
  clusterName: 'example',
  authAddr: 'auth.example.internal:3025',
  proxyPublicAddr: 'teleport.example.com:443',
  s3Bucket: 'example-teleport-certs',
  ssmPrefix: '/teleport',
  region: 'us-east-1',
  // Proxies listen on 3080 behind a load balancer on 443, as in Teleport's AMI.
  behindLoadBalancer: true,
};

export interface World {
  dir: string;
  control: ControlProcess;
  ssm: SsmEmulator;
  s3: S3Server;
  /** Join tokens as published in SSM, by role. */
  tokens: Record<string, string>;
  caPin: string;
  /** With `ec2`: the account the control server allows, and the EC2 emulator (when describe_instances is on). */
  ec2?: { accountId: string; emulator?: Ec2Emulator };
  /**
   * A new IMDS emulator for one instance, closed with the world. In an EC2
   * world it signs the identity document with the world's test "AWS" key,
   * the instance is in the allowed account, and EC2 knows it as running.
   */
  instance(overrides?: Partial<ImdsInstance>): Promise<ImdsEmulator>;
  /** agent.yaml for an instance, every path inside its own sandbox root (EC2 enrollment in an EC2 world). */
  agentConfig(imds: ImdsEmulator, serviceManager: 'systemd' | 'process', heartbeat?: string): Promise<AgentFiles>;
  close(): Promise<void>;
}

/** A certificate chain for the proxy domain, as Let's Encrypt would leave it in S3. */
export async function proxyCertificate(domain: string): Promise<{ fullchain: string; privkey: string }> {
  const ca = await createCertificateAuthority('teleboot test ACME CA');
  const leaf = await issueServerCertificate(ca, [domain], 90);
  return { fullchain: leaf.certPem + ca.certPem, privkey: leaf.keyPem };
}

export interface WorldOptions {
  controlArgs?: string[];
  /**
   * EC2 identity enrollment: the control server trusts a test signing key
   * (as production trusts AWS's certificates) and allows one account;
   * `describe` adds the EC2 emulator for ec2:DescribeInstances.
   */
  ec2?: { describe?: boolean; regions?: string[] };
  /**
   * More of control.yaml, given the emulated AWS endpoints (for the acme and
   * aws sections); the control server then starts after S3 and SSM.
   */
  controlConfig?: (aws: { s3Endpoint: string; ssmEndpoint: string }) => Record<string, unknown>;
  /**
   * The CA pin in SSM at the start: a random one (default), or the one the
   * stand-in tctl publishes (`standin`), as in a real cluster where an auth
   * server republishing the pin leaves it the same. Tests that compare hosts'
   * files before and after their auth servers publish need the latter.
   */
  caPin?: 'random' | 'standin';
  /** The proxy certificate placed in S3 (default: a fresh 90-day one). */
  proxyCertificate?: { fullchain: string; privkey: string };
}

/** The CA pin test/bin/tctl reports for a cluster (it derives it the same way). */
export const standinCaPin = (clusterName: string) => `sha256:${createHash('sha256').update(`standin CA of ${clusterName}`).digest('hex')}`;

export async function startWorld(name: string, opts: WorldOptions = {}): Promise<World> {
  const dir = scratchDir(name);
  // Short heartbeats keep the tests quick; agents take the interval from the server.
  const controlArgs = [...(opts.controlArgs ?? ['--heartbeat-interval', '1s'])];
  let ec2: World['ec2'];
  let signer: ReturnType<typeof createIdentitySigner> | undefined;
  let controlYaml: Record<string, unknown> = {};
  if (opts.ec2) {
    signer = createIdentitySigner();
    const certificatesDir = join(dir, 'aws-identity-certs');
    mkdirSync(certificatesDir, { recursive: true });
    writeFileSync(join(certificatesDir, 'test-aws.pem'), signer.certificatesPem);
    ec2 = {
      accountId: String(100000000000 + Math.floor(Math.random() * 899999999999)),
      emulator: opts.ec2.describe ? await startEc2Emulator() : undefined,
    };
    controlYaml = {
      enrollment: {
        ec2: {
          allowed_accounts: [ec2.accountId],
          ...(opts.ec2.regions ? { allowed_regions: opts.ec2.regions } : {}),
          certificates_dir: certificatesDir,
          ...(ec2.emulator ? { describe_instances: true, ec2_endpoint: ec2.emulator.endpoint } : {}),
        },
      },
    };
  }
  const control = new ControlProcess(join(dir, 'control'), controlArgs, ec2?.emulator || opts.controlConfig ? AWS_ENV : {});
  const startControl = async (aws?: { s3Endpoint: string; ssmEndpoint: string }) => {
    if (aws && opts.controlConfig) controlYaml = { ...controlYaml, ...opts.controlConfig(aws) };
    if (Object.keys(controlYaml).length > 0) {
      const configFile = join(dir, 'control.yaml');
      writeFileSync(configFile, stringify(controlYaml));
      controlArgs.push('--config', configFile);
    }
    await control.start();
    return undefined;
  };
  const aws = Promise.all([startSsmEmulator(), startS3([CLUSTER.s3Bucket], join(dir, 's3'))]);
  const started = await Promise.allSettled([
    aws.then(([ssm]) => ssm),
    aws.then(([, s3]) => s3),
    // Without AWS settings of its own, the control server starts alongside the emulators.
    opts.controlConfig ? aws.then(([ssm, s3]) => startControl({ s3Endpoint: s3.endpoint, ssmEndpoint: ssm.endpoint })) : startControl(),
  ]);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    // Leave nothing behind from a world that could not start.
    await control.stop();
    for (const r of started) if (r.status === 'fulfilled' && r.value) await r.value.close();
    await ec2?.emulator?.close();
    removeDir(dir);
    throw failed.reason;
  }
  const [ssm, s3] = [(started[0] as PromiseFulfilledResult<SsmEmulator>).value, (started[1] as PromiseFulfilledResult<S3Server>).value];
  const tokens: Record<string, string> = { node: randomBytes(16).toString('hex'), proxy: randomBytes(16).toString('hex') };
  // Agent roles, and hosts running several joining services: one token allowing all of them,
  // named by the services sorted and joined with "-" (see joinTokenNameOf in contract/model.ts).
  for (const role of ['kube', 'app', 'db', 'discovery', 'discovery-kube', 'app-db', 'node-proxy'])
    tokens[role] = randomBytes(16).toString('hex');
  const caPin =
    opts.caPin === 'standin' ? standinCaPin(CLUSTER.clusterName) : `sha256:${createHash('sha256').update(randomBytes(32)).digest('hex')}`;
  for (const [role, token] of Object.entries(tokens)) ssm.put(`/teleport/${CLUSTER.clusterName}/tokens/${role}`, token, 'SecureString');
  ssm.put(`/teleport/${CLUSTER.clusterName}/ca-pin-hash`, caPin, 'String');
  const cert = opts.proxyCertificate ?? (await proxyCertificate('teleport.example.com'));
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
    ec2,
    async instance(overrides = {}) {
      const imds = await startImdsEmulator(fakeInstance({ ...(ec2 ? { accountId: ec2.accountId } : {}), ...overrides }), {
        signer: signer?.signer,
      });
      emulators.push(imds);
      const i = imds.instance;
      ec2?.emulator?.put({
        instanceId: i.instanceId,
        ownerId: i.accountId,
        state: 'running',
        imageId: i.imageId,
        instanceType: i.instanceType,
        privateIp: i.privateIp,
        tags: i.tags,
      });
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
        enrollment: ec2 ? 'ec2' : 'join_token',
        root: join(dir, imds.instance.instanceId),
      });
    },
    async close() {
      await control.stop();
      await Promise.all([ssm.close(), s3.close(), ...emulators.map((e) => e.close()), ...(ec2?.emulator ? [ec2.emulator.close()] : [])]);
      stopProcessesUnder(dir);
      if (!process.env.TELEBOOT_KEEP_TEST_FILES) removeDir(dir);
    },
  };
}
