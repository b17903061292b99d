// The packaged agent's message functions, generated when its bundle is built
// (packaging/build/proto-codecs.ts) instead of by protobufjs at run time:
// every message type gets them, the Bootstrap client uses them, and they
// give the same bytes and objects as proto-loader's definitions.
import t from 'tap';
import { runInThisContext } from 'node:vm';
import * as protobuf from 'protobufjs';
import {
  bootstrapClientConstructor,
  installPrecompiledCodecs,
  usePrecompiledCodecs,
  type PrecompiledCodecs,
} from '../contract/proto-client';
import { protoJson } from '../packaging/build/bundle';
import { protoCodecsModule } from '../packaging/build/proto-codecs';
import { sameAsProtoLoader } from './support/proto-samples';

const json = protoJson();
/** The generated module, evaluated as the bundle evaluates it (CommonJS). */
const loaded: { exports: PrecompiledCodecs } = { exports: { codecs: {}, constructors: {} } };
(runInThisContext(`(function (module, exports) {\n${protoCodecsModule(json)}\n})`) as (m: object, e: object) => void)(
  loaded,
  loaded.exports,
);
const generated = loaded.exports;

/** The types whose functions were made from the generated module, by full name. */
const made = new Set<string>();
const counted: PrecompiledCodecs = {
  codecs: Object.fromEntries(
    Object.entries(generated.codecs).map(([name, make]) => [name, (...args: Parameters<typeof make>) => (made.add(name), make(...args))]),
  ),
  constructors: generated.constructors,
};
// Before the client's first use in this process: the client is built once.
usePrecompiledCodecs(counted);

t.test('every message type of the contract gets the generated functions', async (t) => {
  const root = protobuf.Root.fromJSON(JSON.parse(json) as protobuf.INamespace);
  root.resolveAll();
  const types = Object.keys(generated.codecs);
  t.ok(types.length > 10, `${types.length} message types`);
  t.equal(installPrecompiledCodecs(root, generated), types.length, 'each installed');
  const enroll = root.lookupType('teleboot.v1.EnrollRequest').setup();
  t.equal(enroll.encode.name, 'EnrollRequest$encode', 'set up from the generated module');
  t.equal(
    enroll.ctor.toString(),
    generated.constructors['.teleboot.v1.EnrollRequest']().toString(),
    'its constructor from the generated module',
  );
  t.equal(Object.keys(generated.constructors).length, types.length, 'a constructor for each');
});

t.test('the Bootstrap client uses them, with the same bytes and objects as proto-loader', async (t) => {
  sameAsProtoLoader(t, bootstrapClientConstructor().service);
  for (const name of ['EnrollRequest', 'EnrollResponse', 'AssignmentState', 'ReportStatusRequest'])
    t.ok(made.has(`.teleboot.v1.${name}`), `${name}: the generated functions`);
});
