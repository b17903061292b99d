// Starts certificate management on a control replica: the AWS clients, the
// HTTP-01 listener (every replica answers), and the renewal loop (one
// replica at a time orders, under the acme lease).
import { Route53Client } from '@aws-sdk/client-route-53';
import { S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { Logger } from '../../contract/log';
import type { Store } from '../store/store';
import type { AcmeConfig, AwsConfig } from './config';
import { startHttp01Server, type RunningHttp01Server } from './http01-server';
import type { ChallengeSolver } from './issuer';
import { CertificateManager } from './manager';
import { Http01Solver, Route53Solver } from './solvers';
import { AccountKeyParameter, CertificateBucket } from './storage';

export interface RunningCertificateManagement {
  manager: CertificateManager;
  /** The HTTP-01 listener's port, with the http-01 challenge. */
  http01Port?: number;
  close(): Promise<void>;
}

export async function startCertificateManagement(
  acme: AcmeConfig,
  aws: AwsConfig,
  store: Store,
  log: Logger,
): Promise<RunningCertificateManagement> {
  // The SDK's own retries are kept: these calls are rare and not on a boot path.
  const region = aws.region || (await store.getSettings()).region || 'us-east-1';
  const s3 = new S3Client({ region, endpoint: aws.s3Endpoint, forcePathStyle: aws.s3ForcePathStyle });
  const ssm = new SSMClient({ region, endpoint: aws.ssmEndpoint });
  let route53: Route53Client | undefined;
  let http01: RunningHttp01Server | undefined;
  let solver: ChallengeSolver;
  if (acme.challenge === 'dns-01') {
    // Route 53 is a global service, signed for us-east-1.
    route53 = new Route53Client({ region: 'us-east-1', endpoint: aws.route53Endpoint });
    solver = new Route53Solver({
      route53,
      hostedZoneId: acme.route53.hostedZoneId,
      propagationTimeoutMs: acme.route53.propagationTimeoutMs,
    });
  } else {
    http01 = await startHttp01Server(acme.http01Listen, store, log.child({ component: 'acme-http01' }));
    solver = new Http01Solver(store);
  }
  const manager = new CertificateManager({
    store,
    log: log.child({ component: 'acme' }),
    config: acme,
    bucket: new CertificateBucket({ s3, serverSideEncryption: acme.serverSideEncryption, kmsKeyId: acme.kmsKeyId }),
    accountKeys: new AccountKeyParameter(ssm),
    solver,
  });
  const controller = new AbortController();
  const running = manager.run(controller.signal);
  log.info(
    {
      challenge: acme.challenge,
      directory: acme.directoryUrl,
      http01Port: http01?.port,
      renewRemainingFraction: acme.renewRemainingFraction,
    },
    'proxy certificate management started',
  );
  return {
    manager,
    http01Port: http01?.port,
    async close() {
      controller.abort();
      await running;
      await http01?.close();
      s3.destroy();
      ssm.destroy();
      route53?.destroy();
    },
  };
}
