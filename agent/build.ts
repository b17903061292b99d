// Wires an Agent from its configuration: the real IMDS, control client,
// AWS clients and service manager. The benchmark reuses it with its own
// service manager.
import type { Logger } from '../contract/log';
import { Agent, type AgentDeps } from './agent';
import { AwsSecretSource, SsmParameterWriter } from './aws';
import type { AgentConfig } from './config';
import { releaseBootMemoryLogged } from './boot-memory';
import { ControlClient } from './control-client';
import { hostFacts, refreshHostFacts } from './facts';
import { ImdsIdentitySource } from './identity';
import { resolveOwner } from './owner';
import { ProcessManager, SystemdManager, type ServiceManager } from './service-manager';

export function serviceManagerFor(config: AgentConfig, log: Logger): ServiceManager {
  if (config.serviceManager.type === 'process') {
    return new ProcessManager(
      [config.teleport.binary, 'start', `--config=${config.paths.teleportConfig}`],
      log.child({ component: 'teleport' }),
    );
  }
  return new SystemdManager(config.serviceManager.systemctl, config.paths.unitDir, config.serviceManager.unitName);
}

/** Parts a caller may supply instead: the benchmark's sandbox supervisor and timed client. */
export type AgentOverrides = Partial<Pick<AgentDeps, 'services' | 'control'>>;

export function buildAgent(config: AgentConfig, log: Logger, overrides: AgentOverrides = {}): Agent {
  return new Agent({
    config,
    log,
    identity: new ImdsIdentitySource(config.aws.imdsEndpoint),
    control: overrides.control ?? new ControlClient(config.control, { log }),
    secrets: (region) =>
      new AwsSecretSource({
        region,
        ssmEndpoint: config.aws.ssmEndpoint,
        s3Endpoint: config.aws.s3Endpoint,
        s3ForcePathStyle: config.aws.s3ForcePathStyle,
      }),
    services: overrides.services ?? serviceManagerFor(config, log),
    parameters: (region) => new SsmParameterWriter({ region, ssmEndpoint: config.aws.ssmEndpoint }),
    facts: hostFacts,
    refreshFacts: () => refreshHostFacts(),
    bootOver: () => releaseBootMemoryLogged(log),
    owner: resolveOwner(config.teleport.user, config.teleport.group),
  });
}
