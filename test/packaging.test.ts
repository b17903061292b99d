// The example configurations shipped in packaging/ are valid: an operator
// who copies them starts from something the programs accept.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { validateConfig } from '../contract/config-file';
import { AGENT_CONFIG_SCHEMA } from '../agent/config';
import { CONTROL_CONFIG_SCHEMA } from '../control/config';
import { REPO } from './support/harness';
import { spawnSync } from 'node:child_process';
import { CONTROL_NODE_FLAGS } from '../packaging/build/packages';

const example = (name: string) => parse(readFileSync(join(REPO, 'packaging', name), 'utf8'));

t.test('agent.yaml.example passes the agent config schema', async (t) => {
  t.doesNotThrow(() => validateConfig(example('agent.yaml.example'), AGENT_CONFIG_SCHEMA, 'agent.yaml.example'));
});

t.test('control.yaml.example passes the control config schema', async (t) => {
  t.doesNotThrow(() => validateConfig(example('control.yaml.example'), CONTROL_CONFIG_SCHEMA, 'control.yaml.example'));
});

t.test('the units start the programs with the shipped config paths', async (t) => {
  t.match(
    readFileSync(join(REPO, 'packaging/teleboot-agent.service'), 'utf8'),
    /^ExecStart=\/usr\/bin\/teleboot-agent run --config=\/etc\/teleboot\/agent\.yaml$/m,
  );
  t.match(
    readFileSync(join(REPO, 'packaging/teleboot-control.service'), 'utf8'),
    /^ExecStart=\/usr\/bin\/teleboot-control serve --config=\/etc\/teleboot\/control\.yaml$/m,
  );
});

t.test("Node accepts the control server's V8 flags (a flag it refuses stops the server with exit 9)", async (t) => {
  const r = spawnSync(process.execPath, [...CONTROL_NODE_FLAGS, '-e', '0'], {
    env: { ...process.env, NODE_OPTIONS: '' },
    encoding: 'utf8',
  });
  t.equal(r.status, 0, `node ${CONTROL_NODE_FLAGS.join(' ')}: ${r.stderr}`);
});
