// Replies built from the service's views.
import { assignmentToMessage, clusterToMessage } from '../../contract/wire';
import type { AssignmentState } from '../../proto/gen/teleboot/v1/AssignmentState';
import type { Lease } from '../../proto/gen/teleboot/v1/Lease';
import type { AssignmentStateView } from '../service';
import type { LeaseOutcome } from '../store/store';

export function toAssignmentMessage(view: AssignmentStateView): AssignmentState {
  return {
    instanceId: view.instanceId,
    generation: view.generation,
    assigned: view.assigned,
    assignment: view.assignment ? assignmentToMessage(view.assignment) : null,
    cluster: clusterToMessage(view.cluster),
  };
}

export function leaseMessage(name: string, outcome: LeaseOutcome & { joinTokenNames?: string[] }, periodMs: number): Lease {
  return {
    name: outcome.lease?.name ?? (name || 'publisher'),
    holder: outcome.lease?.holder ?? '',
    fencing: outcome.lease?.fencing ?? 0,
    expiresUnixMs: outcome.lease?.expiresAt ?? 0,
    granted: outcome.granted,
    periodMs,
    joinTokenNames: outcome.joinTokenNames ?? [],
  };
}
