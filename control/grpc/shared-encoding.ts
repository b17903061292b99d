// The assignment state pushed to watching agents, encoded with its cluster
// settings shared: a settings change reaches a thousand watchers at once,
// and their messages differ only in the instance's own fields (id,
// generation, assignment); the settings, the bulk of each message, are the
// same for all. They are encoded once per distinct content and the bytes
// appended to each watcher's own fields: protobuf reads fields in any order,
// so the agent decodes exactly the message encoded whole.
import type * as grpc from '@grpc/grpc-js';
import { assignmentToMessage, clusterToMessage } from '../../contract/wire';
import type { AssignmentState } from '../../proto/gen/teleboot/v1/AssignmentState';
import type { AssignmentStateView } from '../service';

/** The message's bytes, carried beside its fields for the wrapped serializer. */
const ENCODED = Symbol('AssignmentState bytes');
type Encoded = AssignmentState & { [ENCODED]?: Buffer };

/** Distinct settings kept encoded: those of a rollout under way (old and new) and a few more. */
const KEPT = 16;

export type Serialize = (message: AssignmentState) => Buffer;

/**
 * Builds watchers' messages on `serialize` (AssignmentState's, from the
 * service definition), each carrying its bytes; `serializer` hands those to
 * grpc-js instead of encoding the message again.
 */
export class SharedAssignmentEncoding {
  /** Settings content (JSON) to their message and their encoded field 5; oldest first. */
  private readonly clusters = new Map<string, { message: AssignmentState['cluster']; field: Buffer }>();

  constructor(private readonly serialize: Serialize) {}

  /** The message for `view`, whose settings are encoded at most once per distinct content. */
  message(view: AssignmentStateView): AssignmentState {
    const cluster = this.cluster(view.cluster);
    const own = {
      instanceId: view.instanceId,
      generation: view.generation,
      assigned: view.assigned,
      assignment: view.assignment ? assignmentToMessage(view.assignment) : null,
    };
    const message: Encoded = { ...own, cluster: cluster.message };
    message[ENCODED] = Buffer.concat([this.serialize(own), cluster.field]);
    return message;
  }

  /** Serializes as `serialize`, taking the bytes a message built here carries. */
  readonly serializer: grpc.serialize<AssignmentState> = (message: Encoded) => message[ENCODED] ?? this.serialize(message);

  private cluster(settings: AssignmentStateView['cluster']) {
    // Equal content is equal encoding (a different key order only misses the cache).
    const key = JSON.stringify(settings);
    let entry = this.clusters.get(key);
    if (!entry) {
      const message = clusterToMessage(settings);
      entry = { message, field: this.serialize({ cluster: message }) };
      this.clusters.set(key, entry);
      if (this.clusters.size > KEPT) this.clusters.delete(this.clusters.keys().next().value as string);
    }
    return entry;
  }
}
