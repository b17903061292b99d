// GET /v1/instances/{id}/config: the files an instance would get, secrets
// masked, so an operator can look before the agents apply a change.
import { Type } from '@sinclair/typebox';
import { INSTANCE_ID_PATTERN } from '../../contract/model';
import { previewConfig } from '../preview';
import { assignmentFromInput, NotFoundError } from '../service';
import { applySettingsPatch, validateClusterSettings } from '../validation';
import { assignmentBody, clusterSettings, errorView, instanceIdParam } from './schemas';
import type { RestApp, RouteDeps } from './typed';

const problem = {
  type: 'object',
  properties: {
    path: { type: 'string', description: 'the key in teleport.yaml (or the file) that is wrong' },
    setting: { type: 'string', description: 'the teleboot input behind it, e.g. cluster.proxyPublicAddr' },
    field: { type: 'string', description: 'the field of PATCH /v1/settings or of the assignment to change' },
    message: { type: 'string' },
  },
} as const;

const fetch = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    bucket: { type: 'string' },
    key: { type: 'string' },
    purpose: { type: 'string' },
    secret: { type: 'boolean' },
  },
} as const;

export const configPreview = {
  type: 'object',
  properties: {
    instanceId: { type: 'string' },
    generation: { type: 'integer' },
    roles: { type: 'array', items: { type: 'string' } },
    valid: { type: 'boolean', description: 'false when the agent would refuse to write anything; problems say why' },
    problems: { type: 'array', items: problem },
    warnings: {
      type: 'array',
      items: problem,
      description:
        'what deserves a look but does not stop the agent: keys of a configFragment that teleboot does not know, written as given',
    },
    instanceFacts: {
      type: 'string',
      enum: ['enrolled', 'placeholder'],
      description: 'placeholder: the instance has not enrolled, its hostname and IP are not known yet',
    },
    paths: {
      type: 'object',
      additionalProperties: { type: 'string' },
      description: "the agent's default paths, which agent.yaml may change",
    },
    fetches: {
      type: 'object',
      description: 'what the agent fetches before it renders',
      properties: { ssm: { type: 'array', items: fetch }, s3: { type: 'array', items: fetch } },
    },
    files: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          path: { type: 'string' },
          mode: { type: 'string' },
          secret: { type: 'boolean' },
          source: { type: 'string', description: 'ssm:<name>, s3://<bucket>/<key> or rendered' },
        },
      },
    },
    teleportYaml: { type: 'string', description: 'the CA pin appears as the SSM parameter it comes from' },
    unit: { type: 'string' },
    environmentFile: { type: 'object', properties: { path: { type: 'string' }, content: { type: 'string' } } },
  },
} as const;

export default async function previewRoutes(app: RestApp, opts: RouteDeps) {
  const { service } = opts;
  app.get(
    '/v1/instances/:id/config',
    {
      config: { scope: 'monitor' },
      schema: {
        summary: 'Preview the teleport.yaml, unit and environment file an instance would get (secrets masked)',
        description:
          "Rendered by the agent's own renderer from the instance's assignment and the current cluster settings. The join token and license are never shown; the CA pin is shown as the SSM parameter it comes from.",
        tags: ['instances'],
        params: instanceIdParam,
        response: { 200: configPreview, 404: errorView, 409: errorView },
      },
    },
    async (request, reply) => {
      const [record, settings] = await Promise.all([service.getInstance(request.params.id), service.getSettings()]);
      if (!record.assignment) {
        return reply.code(409).send({
          statusCode: 409,
          error: 'Conflict',
          message: `instance ${record.instanceId} has no assignment; nothing would be written`,
        });
      }
      return previewConfig(record, settings);
    },
  );

  app.post(
    '/v1/preview',
    {
      config: { scope: 'operator' },
      schema: {
        summary: 'Preview the files an assignment would produce, with optional settings changes, without saving anything',
        description:
          'The assignment is given as for PUT /v1/instances/{id}/assignment and the settings as for PATCH /v1/settings; both are applied only to this preview. With instanceId, the hostname and IP of that instance are used.',
        tags: ['instances'],
        body: Type.Object(
          {
            instanceId: Type.Optional(Type.String({ pattern: INSTANCE_ID_PATTERN })),
            assignment: assignmentBody,
            settings: Type.Optional(clusterSettings),
          },
          { additionalProperties: false },
        ),
        response: { 200: configPreview, 400: errorView, 404: errorView },
      },
    },
    async (request) => {
      const { instanceId, assignment: input, settings: patch } = request.body;
      const assignment = assignmentFromInput(input);
      const current = await service.getSettings();
      const settings = patch ? applySettingsPatch(current, patch) : current;
      if (patch) validateClusterSettings(settings);
      const record = instanceId ? await service.findInstance(instanceId) : undefined;
      if (instanceId && !record) throw new NotFoundError(`instance ${instanceId} not found`);
      return previewConfig(
        { instanceId: instanceId ?? 'preview', identity: record?.identity ?? null, generation: record?.generation ?? 0, assignment },
        settings,
      );
    },
  );
}
