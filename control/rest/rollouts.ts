// Rollouts (docs/ROLLOUTS.md): the list, one rollout's progress per group,
// role and host, and the operator's pause, resume and abort.
import { Type } from '@sinclair/typebox';
import { StringEnum } from '../../contract/schema';
import { ROLLOUT_GROUPS, ROLLOUT_STRATEGIES } from '../../contract/settings';
import { HOST_STATES, ROLLOUT_STATES } from '../rollout/model';
import { summaryOf } from '../rollout';
import { actorOf } from './instances';
import { errorView } from './schemas';
import type { RestApp, RouteDeps } from './typed';

const DEFAULT_PAGE = 50;
const counts = Type.Object(Object.fromEntries([...HOST_STATES, 'total'].map((s) => [s, Type.Integer()])));
const summary = {
  id: Type.String(),
  kind: StringEnum(['change', 'rollback'] as const),
  strategy: StringEnum(ROLLOUT_STRATEGIES),
  state: StringEnum(ROLLOUT_STATES),
  startedBy: Type.String(),
  reason: Type.String(),
  createdAt: Type.Integer({ description: 'unix ms' }),
  updatedAt: Type.Integer({ description: 'unix ms' }),
  note: Type.Optional(Type.String({ description: 'why it halted, paused, was aborted or superseded' })),
  currentWave: Type.Optional(StringEnum(ROLLOUT_GROUPS)),
  hosts: counts,
};
/** A rollout in a list (and where a change answers with the rollout it started). */
export const rolloutSummary = Type.Object(summary);
const hostProgress = Type.Object({
  instanceId: Type.String(),
  role: Type.String(),
  group: StringEnum(ROLLOUT_GROUPS),
  state: StringEnum(HOST_STATES),
  fromGeneration: Type.Integer(),
  toGeneration: Type.Integer(),
  releasedAt: Type.Optional(Type.Integer()),
  finishedAt: Type.Optional(Type.Integer()),
  message: Type.Optional(Type.String({ description: "the agent's last status message (a failure's reason)" })),
  logTail: Type.Optional(Type.Array(Type.String(), { description: "a failed host's last Teleport log lines, secrets masked" })),
});
const rolloutProgress = Type.Object({
  ...summary,
  waves: Type.Array(
    Type.Object({
      group: StringEnum(ROLLOUT_GROUPS),
      instanceIds: Type.Array(Type.String()),
      status: StringEnum(['done', 'current', 'waiting'] as const),
    }),
  ),
  groups: Type.Record(
    Type.String(),
    Type.Object({ ...counts.properties, maxUnavailable: Type.Integer(), failureThreshold: Type.Integer() }),
  ),
  roles: Type.Record(Type.String(), counts),
  hostStates: Type.Array(hostProgress),
  diffs: Type.Array(
    Type.Object({
      role: Type.String(),
      hosts: Type.Integer(),
      changes: Type.Array(
        Type.Object({
          instanceIds: Type.Array(Type.String()),
          files: Type.Array(Type.Object({ path: Type.String(), diff: Type.String() })),
        }),
      ),
    }),
  ),
  supersedes: Type.Optional(Type.String()),
  supersededBy: Type.Optional(Type.String()),
  rollbackOf: Type.Optional(Type.String()),
});
const idParam = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' }) },
  { additionalProperties: false },
);

export default async function rolloutRoutes(app: RestApp, opts: RouteDeps) {
  const { service } = opts;
  app.get(
    '/v1/rollouts',
    {
      config: { scope: 'monitor' },
      schema: {
        summary: 'Rollouts, newest first, with their state, wave under way and host counts',
        tags: ['rollouts'],
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: DEFAULT_PAGE })),
            before: Type.Optional(Type.String({ maxLength: 128, description: 'the "next" of the previous page' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(rolloutSummary), next: Type.Optional(Type.String()) }), 400: errorView },
      },
    },
    async (request) => {
      const page = await service.listRollouts({ ...request.query, limit: request.query.limit ?? DEFAULT_PAGE });
      return { items: page.items.map(summaryOf), ...(page.next ? { next: page.next } : {}) };
    },
  );
  app.get(
    '/v1/rollouts/:id',
    {
      config: { scope: 'monitor' },
      schema: {
        summary: "A rollout's progress per group, role and host (a failed host with its last message and log lines), and its diffs",
        tags: ['rollouts'],
        params: idParam,
        response: { 200: rolloutProgress, 404: errorView },
      },
    },
    async (request) => service.rolloutProgress(request.params.id),
  );
  const operation = (name: 'pause' | 'resume' | 'abort', summaryText: string) =>
    app.post(
      `/v1/rollouts/:id/${name}`,
      {
        config: { scope: 'operator' },
        schema: {
          summary: summaryText,
          tags: ['rollouts'],
          params: idParam,
          response: { 200: rolloutSummary, 404: errorView, 409: errorView },
        },
      },
      async (request) => {
        const actor = actorOf(request);
        const id = request.params.id;
        const done =
          name === 'pause'
            ? service.pauseRollout(id, actor)
            : name === 'resume'
              ? service.resumeRollout(id, actor)
              : service.abortRollout(id, actor);
        return summaryOf(await done);
      },
    );
  operation('pause', 'Pause a running rollout: no host is released until resumed; hosts applying finish');
  operation('resume', 'Resume a paused or halted rollout (a halted one tries its failed hosts again)');
  operation('abort', 'Abort a rollout: the hosts it reached roll back to their generation before it, as a rollout of its own');
}
