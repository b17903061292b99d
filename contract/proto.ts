// Loads the gRPC contract from proto/ at run time; the typed messages in
// proto/gen are generated from the same file by `npm run gen`.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type * as protobuf from 'protobufjs';
import type { ProtoGrpcType } from '../proto/gen/bootstrap';

const PROTO_FILE = 'teleboot/v1/bootstrap.proto';

/** proto/ from source (contract/) and from the build (dist/contract/) alike. */
function protoRoot(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'proto', PROTO_FILE))) return join(dir, 'proto');
  }
  throw new Error(`cannot find proto/${PROTO_FILE} above ${__dirname}`);
}

let cached: ProtoGrpcType | undefined;

// The packaged programs are one file each: packaging/build compiles the
// contract in (protobufjs JSON), so nothing is read from a proto/ beside them.
declare const TELEBOOT_BUNDLED_PROTO: string | undefined;

export function bootstrapProto(): ProtoGrpcType {
  if (!cached) {
    const options = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };
    const definition =
      typeof TELEBOOT_BUNDLED_PROTO === 'string'
        ? protoLoader.fromJSON(JSON.parse(TELEBOOT_BUNDLED_PROTO) as protobuf.INamespace, options)
        : protoLoader.loadSync(PROTO_FILE, { includeDirs: [protoRoot()], ...options });
    // Safe: ProtoGrpcType is generated (npm run gen) from this very proto file; grpc-js types the loaded object only as a GrpcObject.
    cached = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  }
  return cached;
}

/** Limits every gRPC message; agents' messages are small. */
export const MAX_GRPC_MESSAGE_BYTES = 1024 * 1024;
