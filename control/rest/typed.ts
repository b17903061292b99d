// The REST plugins' instance, typed by the TypeBox type provider: a route's
// params, query and body types come from its schemas (the declarations in
// contract/ and control/rest/schemas.ts), with no hand-written generics.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ControlService } from '../service';

export interface RouteDeps {
  service: ControlService;
}

/** What a REST plugin is given: fastify with TypeBox types, and the service. */
export type RestApp = Parameters<FastifyPluginAsyncTypebox<RouteDeps>>[0];
