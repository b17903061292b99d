// The Bootstrap service's client, built from the contract with protobufjs
// alone: what an agent needs at boot. proto-loader (contract/proto.ts) also
// builds every message's descriptors, for reflection and for the control
// server, which costs a boot some 40 ms. The methods here serialize and read
// messages exactly as proto-loader's definitions do (test/proto-client.test.ts).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import type { ProtoGrpcType } from '../proto/gen/bootstrap';

export const PROTO_FILE = 'teleboot/v1/bootstrap.proto';

/** Limits every gRPC message; agents' messages are small. */
export const MAX_GRPC_MESSAGE_BYTES = 1024 * 1024;

/** How messages are read into objects (proto-loader's options, beside keepCase: false). */
export const PROTO_OBJECT_OPTIONS: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: true, oneofs: true };

/** proto/ from source (contract/) and from the build (dist/contract/) alike. */
export function protoRoot(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'proto', PROTO_FILE))) return join(dir, 'proto');
  }
  throw new Error(`cannot find proto/${PROTO_FILE} above ${__dirname}`);
}

// The packaged programs are one file each: packaging/build compiles the
// contract in (protobufjs JSON), so nothing is read from a proto/ beside them.
declare const TELEBOOT_BUNDLED_PROTO: string | undefined;

export type BootstrapClientConstructor = ProtoGrpcType['teleboot']['v1']['Bootstrap'];

/** proto-loader's serializer: fromObject, then encode. */
function serializer(type: protobuf.Type): grpc.serialize<object> {
  return (value) => {
    if (Array.isArray(value))
      throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    return Buffer.from(type.encode(type.fromObject(value)).finish());
  };
}

/** proto-loader's deserializer: decode, then toObject with the same options. */
function deserializer(type: protobuf.Type): grpc.deserialize<object> {
  return (bytes) => type.toObject(type.decode(bytes), PROTO_OBJECT_OPTIONS);
}

/** The functions protobufjs generates for a message type when it is first used (Type.setup). */
export const CODEC_FUNCTIONS = ['encode', 'decode', 'verify', 'fromObject', 'toObject'] as const;
type Codecs = Record<(typeof CODEC_FUNCTIONS)[number], unknown>;

/**
 * A message type's generated functions and constructor, by the type's full
 * name, as protobufjs would generate them at run time, but written into the
 * packaged program's bundle (packaging/build/proto-codecs.ts): compiled from
 * source there, they are in its code cache; generated at run time (new
 * Function), they are compiled anew at every boot.
 */
export interface PrecompiledCodecs {
  /** Each takes what protobufjs gives its generated functions, and returns them. */
  codecs: Record<
    string,
    (Writer: typeof protobuf.Writer, Reader: typeof protobuf.Reader, types: unknown[], util: typeof protobuf.util) => Codecs
  >;
  /** Each returns a new constructor, as protobufjs generates one for the type (Type.generateConstructor). */
  constructors: Record<string, () => protobuf.Constructor<object>>;
}

let precompiled: PrecompiledCodecs | undefined;

/** Called by the packaged program's bundle before main (packaging/build/bundle.ts). */
export function usePrecompiledCodecs(codecs: PrecompiledCodecs): void {
  precompiled = codecs;
}

/**
 * Gives every type of root that has precompiled functions a setup that
 * installs them, in place of the one that generates them (protobufjs's
 * Type.setup does the same with its own), and its constructor (what
 * protobufjs's Type.ctor would generate at its first use). A type with a
 * wrapper, such as google.protobuf.Any, is left to protobufjs. Returns how
 * many types got them.
 */
export function installPrecompiledCodecs(root: protobuf.Root, { codecs, constructors }: PrecompiledCodecs): number {
  let installed = 0;
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const nested of ns.nestedArray) {
      if (nested instanceof protobuf.Type) {
        const make = codecs[nested.fullName];
        const newCtor = constructors[nested.fullName];
        if (make && newCtor && !nested.fullName.startsWith('.google.')) {
          nested.setup = function (this: protobuf.Type) {
            const types = this.fieldsArray.map((f) => f.resolve().resolvedType);
            Object.assign(this, make(protobuf.Writer, protobuf.Reader, types, protobuf.util));
            return this;
          };
          nested.ctor = newCtor();
          installed++;
        }
      }
      if (nested instanceof protobuf.Namespace) visit(nested);
    }
  };
  visit(root);
  return installed;
}

let cached: BootstrapClientConstructor | undefined;

export function bootstrapClientConstructor(): BootstrapClientConstructor {
  if (!cached) {
    const root =
      typeof TELEBOOT_BUNDLED_PROTO === 'string'
        ? protobuf.Root.fromJSON(JSON.parse(TELEBOOT_BUNDLED_PROTO) as protobuf.INamespace)
        : new protobuf.Root().loadSync(join(protoRoot(), PROTO_FILE), { keepCase: false });
    root.resolveAll();
    if (precompiled) installPrecompiledCodecs(root, precompiled);
    const service = root.lookupService('teleboot.v1.Bootstrap');
    const methods: Record<string, grpc.MethodDefinition<object, object>> = {};
    for (const method of service.methodsArray) {
      const request = method.resolvedRequestType!;
      const response = method.resolvedResponseType!;
      methods[method.name] = {
        path: `/${service.fullName.slice(1)}/${method.name}`,
        requestStream: Boolean(method.requestStream),
        responseStream: Boolean(method.responseStream),
        requestSerialize: serializer(request),
        requestDeserialize: deserializer(request),
        responseSerialize: serializer(response),
        responseDeserialize: deserializer(response),
        // The name clients call it by (client.enroll); proto-loader's camelCase of a PascalCase name.
        originalName: method.name[0].toLowerCase() + method.name.slice(1),
      };
    }
    // Safe: ProtoGrpcType is generated (npm run gen) from this very proto file.
    cached = grpc.makeClientConstructor(methods, 'teleboot.v1.Bootstrap') as unknown as BootstrapClientConstructor;
  }
  return cached;
}
