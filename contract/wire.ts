// The assignment and the cluster settings on the gRPC wire and back. proto3
// has no "unset" for scalars: an empty string, zero or false stands for a
// setting that is not set, and maps back to an absent (optional) field.
//
// Each message has a table with one codec per key of the schema's type
// (contract/settings.ts, contract/assignment.ts). The table's type names
// every key of the schema and requires the proto message to have a field of
// that name, so a setting added to the schema without its proto field or
// its codec fails `tsc`; test/wire.test.ts checks the other way round (a
// proto field that no setting maps). Enum values from the wire are checked.
import {
  DATABASE_PROTOCOLS,
  DISCOVERY_AWS_TYPES,
  JOIN_VIA,
  SERVICE_ROLES,
  type AppSpec,
  type Assignment,
  type AwsMatcher,
  type CommandLabel,
  type DatabaseSpec,
  type DiscoveryOptions,
  type KubeOptions,
} from './assignment';
import {
  AUTH_TYPES,
  CACHE_SETTINGS,
  DRIFT_REPAIR_MODES,
  JOIN_METHODS,
  LOG_FORMATS,
  LOG_SEVERITY_SETTINGS,
  PROXY_LISTENER_MODES,
  PROXY_PROTOCOL_MODES,
  SECOND_FACTORS,
  STORAGE_TYPES,
  TLS_SOURCES,
  TRUST_ROLES,
  type ClusterSettings,
  type ControlOnlySetting,
  type RoleMapping,
  type StorageSettings,
} from './settings';
import { TELEPORT_EDITIONS, TELEPORT_SOURCES, type TeleportRelease } from './teleport-release';
import type { AppSpec as AppSpecMessage, AppSpec__Output } from '../proto/gen/teleboot/v1/AppSpec';
import type { Assignment as AssignmentMessage, Assignment__Output } from '../proto/gen/teleboot/v1/Assignment';
import type { AwsMatcher as AwsMatcherMessage, AwsMatcher__Output } from '../proto/gen/teleboot/v1/AwsMatcher';
import type { ClusterSettings as ClusterMessage, ClusterSettings__Output } from '../proto/gen/teleboot/v1/ClusterSettings';
import type { CommandLabel as CommandLabelMessage, CommandLabel__Output } from '../proto/gen/teleboot/v1/CommandLabel';
import type { DatabaseSpec as DatabaseSpecMessage, DatabaseSpec__Output } from '../proto/gen/teleboot/v1/DatabaseSpec';
import type { DiscoveryOptions as DiscoveryMessage, DiscoveryOptions__Output } from '../proto/gen/teleboot/v1/DiscoveryOptions';
import type { KubeOptions as KubeMessage, KubeOptions__Output } from '../proto/gen/teleboot/v1/KubeOptions';
import type { LabelSelector as LabelSelectorMessage, LabelSelector__Output } from '../proto/gen/teleboot/v1/LabelSelector';
import type { RoleMapping as RoleMappingMessage, RoleMapping__Output } from '../proto/gen/teleboot/v1/RoleMapping';
import type { StorageSettings as StorageMessage, StorageSettings__Output } from '../proto/gen/teleboot/v1/StorageSettings';
import type { TeleportRelease as ReleaseMessage, TeleportRelease__Output } from '../proto/gen/teleboot/v1/TeleportRelease';

/** A message from the control server that the agent cannot read as a setting; names the field. */
export class WireError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'WireError';
  }
}

/** One field across the wire: to the message, and back from the decoded message (`field` names it in errors). */
export interface Codec<Value, Wire, Decoded> {
  encode(value: Value): Wire;
  decode(wire: Decoded, field: string): Value;
}

/**
 * A codec for every key of `Value`, each for the proto field of the same
 * name. A key without a field of that name in the message makes the entry's
 * type a sentence no codec is assignable to, so `tsc` names it.
 */
export type CodecTable<Value, Message, Decoded> = {
  [K in keyof Value]-?: K extends keyof Message & keyof Decoded
    ? Codec<Value[K], Message[K], Decoded[K]>
    : `the proto message has no field ${K & string}`;
};

/** Drops the keys whose value is undefined, so absent stays absent. */
function defined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as Array<keyof T>) if (value[key] === undefined) delete value[key];
  return value;
}

function encodeWith<Value, Message, Decoded>(table: CodecTable<Value, Message, Decoded>, value: Value): Message {
  const message: Record<string, unknown> = {};
  for (const key of Object.keys(table) as Array<keyof Value & string>) {
    // The table's type pairs each key's codec with that key's value and field types.
    message[key] = (table[key] as Codec<unknown, unknown, unknown>).encode(value[key]);
  }
  return message as Message;
}

function decodeWith<Value, Message, Decoded extends object>(table: CodecTable<Value, Message, Decoded>, wire: Decoded, at: string): Value {
  const value: Record<string, unknown> = {};
  const fields: Partial<Record<string, unknown>> = wire;
  for (const key of Object.keys(table) as Array<keyof Value & string>) {
    value[key] = (table[key] as Codec<unknown, unknown, unknown>).decode(fields[key], `${at}.${key}`);
  }
  // Every key of Value has its codec (the table's type), and each decoded its own field.
  return defined(value) as Value;
}

// ---- codecs --------------------------------------------------------------------------

const text: Codec<string, string, string> = { encode: (v) => v, decode: (w) => w };
const optText: Codec<string | undefined, string, string> = { encode: (v) => v ?? '', decode: (w) => (w ? w : undefined) };
const optCount: Codec<number | undefined, number, number> = {
  encode: (v) => v ?? 0,
  decode: (w) => (w ? Number(w) : undefined),
};
const optFlag: Codec<boolean | undefined, boolean, boolean> = { encode: (v) => v ?? false, decode: (w) => w || undefined };
const labels: Codec<Record<string, string>, Record<string, string>, Record<string, string> | null> = {
  encode: (v) => v,
  decode: (w) => ({ ...(w ?? {}) }),
};
const optLabels: Codec<Record<string, string> | undefined, Record<string, string>, Record<string, string> | null> = {
  encode: (v) => v ?? {},
  decode: (w) => (w && Object.keys(w).length > 0 ? { ...w } : undefined),
};

/** A teleport.yaml fragment as JSON text; "" stands for absent. */
const optFragment: Codec<Record<string, unknown> | undefined, string, string> = {
  encode: (v) => (v ? JSON.stringify(v) : ''),
  decode: (w, field) => {
    if (!w) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(w);
    } catch (err) {
      throw new WireError(field, `is not JSON: ${(err as Error).message}`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new WireError(field, 'must be a JSON object');
    return value as Record<string, unknown>;
  },
};

/** One of `values`; anything else from the wire is an error naming the field. */
function choice<const T extends readonly string[]>(values: T): Codec<T[number], string, string> {
  const known = (w: string): w is T[number] => (values as readonly string[]).includes(w);
  return {
    encode: (v) => v,
    decode: (w, field) => {
      if (known(w)) return w;
      throw new WireError(
        field,
        `unknown value ${JSON.stringify(w)}; this agent knows ${values.join(', ')} (is it older than the control server?)`,
      );
    },
  };
}

/** An optional one of `values`: "" stands for absent. */
function optChoice<const T extends readonly string[]>(values: T): Codec<T[number] | undefined, string, string> {
  const one = choice(values);
  return { encode: (v) => v ?? '', decode: (w, field) => (w ? one.decode(w, field) : undefined) };
}

function list<V, M, D>(item: Codec<V, M, D>): Codec<V[], M[], D[]> {
  return {
    encode: (v) => v.map((x) => item.encode(x)),
    decode: (w, field) => (w ?? []).map((x, i) => item.decode(x, `${field}[${i}]`)),
  };
}

/** A list that is absent when empty, so an assignment reads back as it was saved. */
function optList<V, M, D>(item: Codec<V, M, D>): Codec<V[] | undefined, M[], D[]> {
  const all = list(item);
  return { encode: (v) => all.encode(v ?? []), decode: (w, field) => (w?.length ? all.decode(w, field) : undefined) };
}

function message<V, M, D extends object>(table: CodecTable<V, M, D>): Codec<V, M, D> {
  return { encode: (v) => encodeWith(table, v), decode: (w, field) => decodeWith(table, w, field) };
}

function optMessage<V, M, D extends object>(table: CodecTable<V, M, D>): Codec<V | undefined, M | null, D | null> {
  return {
    encode: (v) => (v ? encodeWith(table, v) : null),
    decode: (w, field) => (w ? decodeWith(table, w, field) : undefined),
  };
}

// ---- the cluster settings ----------------------------------------------------------------

const storageTable: CodecTable<StorageSettings, StorageMessage, StorageSettings__Output> = {
  // An agent reads a message without storage (an older server) as local storage.
  type: { encode: (v) => v, decode: (w, field) => (w ? choice(STORAGE_TYPES).decode(w, field) : 'dir') },
  tableName: optText,
  region: optText,
  auditEventsUri: optList(text),
  auditSessionsUri: optText,
};
const EMPTY_STORAGE: StorageSettings__Output = { type: '', tableName: '', region: '', auditEventsUri: [], auditSessionsUri: '' };

const releaseTable: CodecTable<TeleportRelease, ReleaseMessage, TeleportRelease__Output> = {
  version: text,
  edition: optChoice(TELEPORT_EDITIONS),
  source: optChoice(TELEPORT_SOURCES),
  bucket: optText,
};

const roleMappingTable: CodecTable<RoleMapping, RoleMappingMessage, RoleMapping__Output> = { remote: text, local: list(text) };

/** What agents get of the settings: all but the control-only ones (the rollout pace). */
export type AgentSettings = Omit<ClusterSettings, ControlOnlySetting>;

const settingsTable: CodecTable<AgentSettings, ClusterMessage, ClusterSettings__Output> = {
  clusterName: text,
  authAddr: text,
  proxyPublicAddr: text,
  s3Bucket: text,
  ssmPrefix: text,
  region: text,
  storage: { encode: (v) => encodeWith(storageTable, v), decode: (w, field) => decodeWith(storageTable, w ?? EMPTY_STORAGE, field) },
  joinMethod: optChoice(JOIN_METHODS),
  iamTokenName: optText,
  joinVia: optChoice(JOIN_VIA),
  proxyListenerMode: optChoice(PROXY_LISTENER_MODES),
  tlsSource: optChoice(TLS_SOURCES),
  sshPublicAddr: optText,
  tunnelPublicAddr: optText,
  kubePublicAddr: optText,
  mysqlPublicAddr: optText,
  postgresPublicAddr: optText,
  mongoPublicAddr: optText,
  maxConnections: optCount,
  maxUsers: optCount,
  logSeverity: optChoice(LOG_SEVERITY_SETTINGS),
  logFormat: optChoice(LOG_FORMATS),
  authType: optChoice(AUTH_TYPES),
  secondFactor: optChoice(SECOND_FACTORS),
  keepAliveInterval: optText,
  keepAliveCountMax: optCount,
  enterprise: optFlag,
  httpsProxy: optText,
  httpProxy: optText,
  noProxy: optText,
  trustRole: optChoice(TRUST_ROLES),
  rootClusterName: optText,
  rootWebProxyAddr: optText,
  rootTunnelAddr: optText,
  rootRoleMap: optList(message(roleMappingTable)),
  fips: optFlag,
  proxyProtocol: optChoice(PROXY_PROTOCOL_MODES),
  proxyWebListenPort: optCount,
  behindLoadBalancer: optFlag,
  cache: optChoice(CACHE_SETTINGS),
  configFragment: optFragment,
  driftRepair: optChoice(DRIFT_REPAIR_MODES),
  teleport: optMessage(releaseTable),
};

/** Fields of the ClusterSettings message that are no setting: the control server derives them. */
export const DERIVED_SETTINGS_FIELDS = ['certDomain'] as const;

export function clusterToMessage(c: ClusterSettings & { certDomain: string }): ClusterMessage {
  return { ...encodeWith(settingsTable, c), certDomain: c.certDomain };
}

/** Throws WireError, naming the field, for a value this agent does not know. */
export function clusterFromMessage(c: ClusterSettings__Output): AgentSettings {
  return decodeWith(settingsTable, c, 'cluster');
}

// ---- the assignment -------------------------------------------------------------------

const commandLabelTable: CodecTable<CommandLabel, CommandLabelMessage, CommandLabel__Output> = {
  name: text,
  command: list(text),
  period: text,
};
const labelSelectorTable: CodecTable<KubeOptions['resources'][number], LabelSelectorMessage, LabelSelector__Output> = { labels };
const kubeTable: CodecTable<KubeOptions, KubeMessage, KubeOptions__Output> = {
  resources: list(message(labelSelectorTable)),
  labels: optLabels,
};
const appTable: CodecTable<AppSpec, AppSpecMessage, AppSpec__Output> = {
  name: text,
  uri: text,
  publicAddr: optText,
  description: optText,
  labels: optLabels,
  insecureSkipVerify: optFlag,
};
const databaseTable: CodecTable<DatabaseSpec, DatabaseSpecMessage, DatabaseSpec__Output> = {
  name: text,
  protocol: choice(DATABASE_PROTOCOLS),
  uri: text,
  description: optText,
  awsRegion: optText,
  redshiftClusterId: optText,
  staticLabels: optLabels,
};
const awsMatcherTable: CodecTable<AwsMatcher, AwsMatcherMessage, AwsMatcher__Output> = {
  types: list(choice(DISCOVERY_AWS_TYPES)),
  regions: list(text),
  tags: optLabels,
  ssmDocumentName: optText,
  installTokenName: optText,
  assumeRoleArn: optText,
};
const discoveryTable: CodecTable<DiscoveryOptions, DiscoveryMessage, DiscoveryOptions__Output> = {
  group: optText,
  aws: list(message(awsMatcherTable)),
};

const assignmentTable: CodecTable<Assignment, AssignmentMessage, Assignment__Output> = {
  roles: list(choice(SERVICE_ROLES)),
  labels,
  nodename: optText,
  commandLabels: optList(message(commandLabelTable)),
  advertiseIp: optText,
  joinVia: optChoice(JOIN_VIA),
  kube: optMessage(kubeTable),
  apps: optList(message(appTable)),
  databases: optList(message(databaseTable)),
  discovery: optMessage(discoveryTable),
  configFragment: optFragment,
  teleport: optMessage(releaseTable),
};

export function assignmentToMessage(a: Assignment): AssignmentMessage {
  return encodeWith(assignmentTable, a);
}

/** Throws WireError, naming the field, for a value this agent does not know. */
export function assignmentFromMessage(m: Assignment__Output): Assignment {
  return decodeWith(assignmentTable, m, 'assignment');
}

/**
 * The schema's keys of each message the tables map, by proto message name:
 * test/wire.test.ts compares them with the fields of the loaded proto.
 */
export const MAPPED_MESSAGES = {
  ClusterSettings: settingsTable,
  StorageSettings: storageTable,
  RoleMapping: roleMappingTable,
  Assignment: assignmentTable,
  CommandLabel: commandLabelTable,
  LabelSelector: labelSelectorTable,
  KubeOptions: kubeTable,
  AppSpec: appTable,
  DatabaseSpec: databaseTable,
  AwsMatcher: awsMatcherTable,
  DiscoveryOptions: discoveryTable,
  TeleportRelease: releaseTable,
} as const;
