// The agent's Bootstrap client (contract/proto-client: protobufjs alone, no
// descriptors) against proto-loader's definitions, which the control server
// serves: the same methods under the same names, and the same bytes and
// objects for the same messages, both ways.
import t from 'tap';
import { bootstrapClientConstructor } from '../contract/proto-client';
import { bootstrapProto } from '../contract/proto';
import { sameAsProtoLoader } from './support/proto-samples';

const light = bootstrapClientConstructor().service;
const full = bootstrapProto().teleboot.v1.Bootstrap.service;

t.test('every method, with its path, streaming and the name clients call it by', async (t) => {
  t.same(Object.keys(light).sort(), Object.keys(full).sort());
  for (const [name, def] of Object.entries(full)) {
    const pick = ({ path, requestStream, responseStream, originalName }: typeof def) => ({
      path,
      requestStream,
      responseStream,
      originalName,
    });
    t.same(pick(light[name as keyof typeof light]), pick(def), name);
  }
});

t.test('messages serialize to the same bytes and read back as the same objects', async (t) => {
  sameAsProtoLoader(t, light);
});
