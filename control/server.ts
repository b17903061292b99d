// Assembles the control server: store, TLS, domain service, gRPC and REST.
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../contract/log';
import { splitHostPort } from '../contract/address';
import { VERSION } from '../contract/version';
import type { ControlConfig } from './config';
import { Ec2IdentityVerifier, JoinTokenVerifier, ProofVerifier } from './enrollment';
import { loadTrustedCertificates, shippedCertificatesDir } from './ec2-identity';
import { AwsEc2InstanceLookup } from './ec2-lookup';
import { ensureAdminToken } from './admin-token';
import { startAuditRetention, type RunningAuditRetention } from './audit-retention';
import { CallLimits } from './call-limits';
import { ReplicaShare } from './replica-share';
import { startCertificateManagement, type RunningCertificateManagement } from './acme/start';
import { startGrpcServer, type RunningGrpcServer } from './grpc/server';
import { buildRestApp } from './rest/app';
import { ControlService } from './service';
import { openDataDir, type OpenedDataDir, type StartOptions } from './startup';
import { loadJoinToken } from './tls-material';

export interface RunningControlServer {
  service: ControlService;
  grpcPort: number;
  restUrl: string;
  caPem: string;
  /** The ACME HTTP-01 listener's port, when it runs. */
  http01Port?: number;
  close(): Promise<void>;
}

/** Starts the servers; `options.opened` when the caller checked and opened the data directory already. */
export async function startControlServer(
  config: ControlConfig,
  log: Logger,
  options: StartOptions & { opened?: OpenedDataDir } = {},
): Promise<RunningControlServer> {
  const { store, identity, tls, bootstrapToken } = options.opened ?? (await openDataDir(config, log, options));
  let grpcServer: RunningGrpcServer | undefined;
  let stopRollouts: (() => void) | undefined;
  let rest: FastifyInstance | undefined;
  let lookup: AwsEc2InstanceLookup | undefined;
  let certificates: RunningCertificateManagement | undefined;
  let auditRetention: RunningAuditRetention | undefined;
  let replicaShare: ReplicaShare | undefined;
  try {
    const bootstrapTokens = config.bootstrapToken ? [bootstrapToken ?? (await loadJoinToken(config.joinTokenFile, log))] : [];
    let ec2: Ec2IdentityVerifier | undefined;
    if (config.ec2) {
      const certificatesDir = config.ec2.certificatesDir ?? shippedCertificatesDir();
      const trusted = loadTrustedCertificates(certificatesDir);
      lookup = config.ec2.describeInstances ? new AwsEc2InstanceLookup(config.ec2.ec2Endpoint) : undefined;
      ec2 = new Ec2IdentityVerifier({
        trusted,
        allowedAccounts: config.ec2.allowedAccounts,
        allowedRegions: config.ec2.allowedRegions,
        lookup,
      });
      log.info(
        {
          certificatesDir,
          certificates: trusted.length,
          accounts: config.ec2.allowedAccounts,
          regions: config.ec2.allowedRegions,
          describeInstances: !!lookup,
        },
        'EC2 identity enrollment enabled',
      );
    }
    const service = new ControlService({
      store,
      ca: tls.ca,
      verifier: new ProofVerifier({ joinToken: new JoinTokenVerifier(bootstrapTokens, store), ec2 }),
      clientCertificateLifetimeMs: config.clientCertificateLifetimeMs,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      publisherLeaseMs: config.publisherLeaseMs,
      certificateAlertMs: config.acme?.alertBeforeMs,
      log: log.child({ component: 'rollout' }),
    });
    service.startRollouts();
    stopRollouts = () => service.stopRollouts();
    // Rate limits hold fleet-wide: each replica applies its share (replica-share.ts).
    // SQLite serves one host: no heartbeat to write.
    replicaShare = store.kind === 'sqlite' ? undefined : new ReplicaShare(store, log.child({ component: 'replicas' }));
    await replicaShare?.start();
    const share = replicaShare?.share;
    service.callLimits = new CallLimits({ ...config.rateLimits, share });
    auditRetention = startAuditRetention(store, config.audit, log.child({ component: 'audit' }));
    const started = await startGrpcServer(config.grpcListen, {
      service,
      log: log.child({ component: 'grpc' }),
      tls: { certPem: tls.certPem, keyPem: tls.keyPem, clientCaPem: tls.ca.certPem },
      enrollRateLimit: { perMinute: config.rateLimits.enrollPerMinute, exemptLoopback: config.rateLimits.exemptLoopback, share },
    });
    await ensureAdminToken(service, config.dataDir, log);
    if (config.acme) {
      certificates = await startCertificateManagement(config.acme, config.aws, store, log);
      service.certificates = certificates.manager;
    }
    grpcServer = started;
    rest = await buildRestApp({
      service,
      logger: log.child({ component: 'rest' }),
      https: config.restTls ? { key: tls.keyPem, cert: tls.certPem } : undefined,
      version: VERSION,
      auth: { probesPublic: config.restAuth.probesPublic },
      writeRateLimit: { perMinute: config.rateLimits.restWritesPerMinute, exemptLoopback: config.rateLimits.exemptLoopback, share },
    });
    const { host, port } = splitHostPort(config.restListen);
    await rest.listen({ host, port });
    const restPort = (rest.server.address() as { port: number }).port;
    const restUrl = `${config.restTls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${restPort}`;
    log.info(
      {
        grpcPort: started.port,
        restUrl,
        store: store.kind,
        storePath: config.postgres?.url ?? config.storePath,
        clusterId: identity.clusterId,
      },
      'teleboot-control serving',
    );
    const restApp = rest;
    return {
      service,
      grpcPort: started.port,
      restUrl,
      caPem: tls.ca.certPem,
      http01Port: certificates?.http01Port,
      async close() {
        service.stopRollouts();
        auditRetention?.stop();
        await certificates?.close();
        await Promise.all([restApp.close(), started.shutdown()]);
        lookup?.close();
        await replicaShare?.stop();
        await store.close();
      },
    };
  } catch (err) {
    stopRollouts?.();
    grpcServer?.forceShutdown();
    auditRetention?.stop();
    await certificates?.close();
    await rest?.close();
    lookup?.close();
    await replicaShare?.stop();
    await store.close();
    throw err;
  }
}
