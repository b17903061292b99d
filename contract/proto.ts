// Loads the gRPC contract from proto/ at run time; the typed messages in
// proto/gen are generated from the same file by `npm run gen`.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type * as protobuf from 'protobufjs';
import type { ProtoGrpcType } from '../proto/gen/bootstrap';
import { PROTO_FILE, PROTO_OBJECT_OPTIONS, protoRoot } from './proto-client';

export { MAX_GRPC_MESSAGE_BYTES } from './proto-client';

let cached: ProtoGrpcType | undefined;

// The packaged programs are one file each: packaging/build compiles the
// contract in (protobufjs JSON), so nothing is read from a proto/ beside them.
declare const TELEBOOT_BUNDLED_PROTO: string | undefined;

export function bootstrapProto(): ProtoGrpcType {
  if (!cached) {
    const options = { keepCase: false, ...PROTO_OBJECT_OPTIONS };
    const definition =
      typeof TELEBOOT_BUNDLED_PROTO === 'string'
        ? protoLoader.fromJSON(JSON.parse(TELEBOOT_BUNDLED_PROTO) as protobuf.INamespace, options)
        : protoLoader.loadSync(PROTO_FILE, { includeDirs: [protoRoot()], ...options });
    // Safe: ProtoGrpcType is generated (npm run gen) from this very proto file; grpc-js types the loaded object only as a GrpcObject.
    cached = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  }
  return cached;
}
