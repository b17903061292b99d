// The assignment and the cluster settings on the gRPC wire and back. proto3
// has no "unset" for scalars: an empty string, zero or false stands for a
// setting that is not set, and maps back to an absent (optional) field.
import type {
  AppSpec,
  Assignment,
  AwsMatcher,
  ClusterSettings,
  CommandLabel,
  DatabaseSpec,
  DiscoveryOptions,
  JoinVia,
  KubeOptions,
  ServiceRole,
  StorageSettings,
} from './model';
import type { Assignment as AssignmentMessage, Assignment__Output } from '../proto/gen/teleboot/v1/Assignment';
import type { ClusterSettings as ClusterMessage, ClusterSettings__Output } from '../proto/gen/teleboot/v1/ClusterSettings';

/** Drops the keys whose value is undefined, so absent stays absent. */
function defined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as Array<keyof T>) if (value[key] === undefined) delete value[key];
  return value;
}

const opt = (s: string | undefined | null): string | undefined => (s ? s : undefined);
const optNum = (n: number | undefined | null): number | undefined => (n ? Number(n) : undefined);
const optMap = (m: Record<string, string> | undefined | null): Record<string, string> | undefined =>
  m && Object.keys(m).length > 0 ? { ...m } : undefined;

export function assignmentToMessage(a: Assignment): AssignmentMessage {
  return {
    roles: a.roles,
    labels: a.labels,
    nodename: a.nodename ?? '',
    commandLabels: (a.commandLabels ?? []).map((c) => ({ name: c.name, command: c.command, period: c.period })),
    advertiseIp: a.advertiseIp ?? '',
    joinVia: a.joinVia ?? '',
    kube: a.kube ? { resources: a.kube.resources.map((r) => ({ labels: r.labels })), labels: a.kube.labels ?? {} } : null,
    apps: (a.apps ?? []).map((app) => ({
      name: app.name,
      uri: app.uri,
      publicAddr: app.publicAddr ?? '',
      description: app.description ?? '',
      labels: app.labels ?? {},
      insecureSkipVerify: app.insecureSkipVerify ?? false,
    })),
    databases: (a.databases ?? []).map((d) => ({
      name: d.name,
      protocol: d.protocol,
      uri: d.uri,
      description: d.description ?? '',
      awsRegion: d.awsRegion ?? '',
      redshiftClusterId: d.redshiftClusterId ?? '',
      staticLabels: d.staticLabels ?? {},
    })),
    discovery: a.discovery
      ? {
          group: a.discovery.group ?? '',
          aws: a.discovery.aws.map((m) => ({
            types: m.types,
            regions: m.regions,
            tags: m.tags ?? {},
            ssmDocumentName: m.ssmDocumentName ?? '',
            installTokenName: m.installTokenName ?? '',
            assumeRoleArn: m.assumeRoleArn ?? '',
          })),
        }
      : null,
  };
}

export function assignmentFromMessage(m: Assignment__Output): Assignment {
  // Lists are left out when empty, so an assignment reads back as it was saved.
  const commandLabels: CommandLabel[] = (m.commandLabels ?? []).map((c) => ({ name: c.name, command: [...c.command], period: c.period }));
  const apps: AppSpec[] = (m.apps ?? []).map((a) =>
    defined({
      name: a.name,
      uri: a.uri,
      publicAddr: opt(a.publicAddr),
      description: opt(a.description),
      labels: optMap(a.labels),
      insecureSkipVerify: a.insecureSkipVerify || undefined,
    }),
  );
  const databases: DatabaseSpec[] = (m.databases ?? []).map((d) =>
    defined({
      name: d.name,
      protocol: d.protocol as DatabaseSpec['protocol'],
      uri: d.uri,
      description: opt(d.description),
      awsRegion: opt(d.awsRegion),
      redshiftClusterId: opt(d.redshiftClusterId),
      staticLabels: optMap(d.staticLabels),
    }),
  );
  const kube: KubeOptions | undefined = m.kube
    ? defined({ resources: (m.kube.resources ?? []).map((r) => ({ labels: { ...(r.labels ?? {}) } })), labels: optMap(m.kube.labels) })
    : undefined;
  const discovery: DiscoveryOptions | undefined = m.discovery
    ? defined({
        group: opt(m.discovery.group),
        aws: (m.discovery.aws ?? []).map((x): AwsMatcher =>
          defined({
            types: [...x.types] as AwsMatcher['types'],
            regions: [...x.regions],
            tags: optMap(x.tags),
            ssmDocumentName: opt(x.ssmDocumentName),
            installTokenName: opt(x.installTokenName),
            assumeRoleArn: opt(x.assumeRoleArn),
          }),
        ),
      })
    : undefined;
  return defined({
    roles: m.roles as ServiceRole[],
    labels: m.labels ?? {},
    nodename: opt(m.nodename),
    commandLabels: commandLabels.length > 0 ? commandLabels : undefined,
    advertiseIp: opt(m.advertiseIp),
    joinVia: opt(m.joinVia) as JoinVia | undefined,
    kube,
    apps: apps.length > 0 ? apps : undefined,
    databases: databases.length > 0 ? databases : undefined,
    discovery,
  });
}

export function clusterToMessage(c: ClusterSettings & { certDomain: string }): ClusterMessage {
  return {
    clusterName: c.clusterName,
    authAddr: c.authAddr,
    proxyPublicAddr: c.proxyPublicAddr,
    s3Bucket: c.s3Bucket,
    ssmPrefix: c.ssmPrefix,
    region: c.region,
    certDomain: c.certDomain,
    storage: {
      type: c.storage.type,
      tableName: c.storage.tableName ?? '',
      region: c.storage.region ?? '',
      auditEventsUri: c.storage.auditEventsUri ?? [],
      auditSessionsUri: c.storage.auditSessionsUri ?? '',
    },
    joinMethod: c.joinMethod ?? '',
    iamTokenName: c.iamTokenName ?? '',
    joinVia: c.joinVia ?? '',
    proxyListenerMode: c.proxyListenerMode ?? '',
    tlsSource: c.tlsSource ?? '',
    sshPublicAddr: c.sshPublicAddr ?? '',
    tunnelPublicAddr: c.tunnelPublicAddr ?? '',
    kubePublicAddr: c.kubePublicAddr ?? '',
    mysqlPublicAddr: c.mysqlPublicAddr ?? '',
    postgresPublicAddr: c.postgresPublicAddr ?? '',
    mongoPublicAddr: c.mongoPublicAddr ?? '',
    maxConnections: c.maxConnections ?? 0,
    maxUsers: c.maxUsers ?? 0,
    logSeverity: c.logSeverity ?? '',
    logFormat: c.logFormat ?? '',
    authType: c.authType ?? '',
    secondFactor: c.secondFactor ?? '',
    keepAliveInterval: c.keepAliveInterval ?? '',
    keepAliveCountMax: c.keepAliveCountMax ?? 0,
    enterprise: c.enterprise ?? false,
    httpsProxy: c.httpsProxy ?? '',
    httpProxy: c.httpProxy ?? '',
    noProxy: c.noProxy ?? '',
    trustRole: c.trustRole ?? '',
    rootClusterName: c.rootClusterName ?? '',
    rootWebProxyAddr: c.rootWebProxyAddr ?? '',
    rootTunnelAddr: c.rootTunnelAddr ?? '',
    rootRoleMap: (c.rootRoleMap ?? []).map((m) => ({ remote: m.remote, local: m.local })),
  };
}

export function clusterFromMessage(c: ClusterSettings__Output): ClusterSettings {
  const s = c.storage;
  const storage: StorageSettings = defined({
    type: s?.type === 'dynamodb' ? 'dynamodb' : 'dir',
    tableName: opt(s?.tableName),
    region: opt(s?.region),
    auditEventsUri: s?.auditEventsUri?.length ? [...s.auditEventsUri] : undefined,
    auditSessionsUri: opt(s?.auditSessionsUri),
  });
  return defined({
    clusterName: c.clusterName,
    authAddr: c.authAddr,
    proxyPublicAddr: c.proxyPublicAddr,
    s3Bucket: c.s3Bucket,
    ssmPrefix: c.ssmPrefix,
    region: c.region,
    storage,
    joinMethod: opt(c.joinMethod) as ClusterSettings['joinMethod'],
    iamTokenName: opt(c.iamTokenName),
    joinVia: opt(c.joinVia) as ClusterSettings['joinVia'],
    proxyListenerMode: opt(c.proxyListenerMode) as ClusterSettings['proxyListenerMode'],
    tlsSource: opt(c.tlsSource) as ClusterSettings['tlsSource'],
    sshPublicAddr: opt(c.sshPublicAddr),
    tunnelPublicAddr: opt(c.tunnelPublicAddr),
    kubePublicAddr: opt(c.kubePublicAddr),
    mysqlPublicAddr: opt(c.mysqlPublicAddr),
    postgresPublicAddr: opt(c.postgresPublicAddr),
    mongoPublicAddr: opt(c.mongoPublicAddr),
    maxConnections: optNum(c.maxConnections),
    maxUsers: optNum(c.maxUsers),
    logSeverity: opt(c.logSeverity) as ClusterSettings['logSeverity'],
    logFormat: opt(c.logFormat) as ClusterSettings['logFormat'],
    authType: opt(c.authType) as ClusterSettings['authType'],
    secondFactor: opt(c.secondFactor) as ClusterSettings['secondFactor'],
    keepAliveInterval: opt(c.keepAliveInterval),
    keepAliveCountMax: optNum(c.keepAliveCountMax),
    enterprise: c.enterprise || undefined,
    httpsProxy: opt(c.httpsProxy),
    httpProxy: opt(c.httpProxy),
    noProxy: opt(c.noProxy),
    trustRole: opt(c.trustRole) as ClusterSettings['trustRole'],
    rootClusterName: opt(c.rootClusterName),
    rootWebProxyAddr: opt(c.rootWebProxyAddr),
    rootTunnelAddr: opt(c.rootTunnelAddr),
    rootRoleMap: c.rootRoleMap?.length ? c.rootRoleMap.map((m) => ({ remote: m.remote, local: [...m.local] })) : undefined,
  });
}
