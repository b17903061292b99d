// Both command-line programs: --help everywhere, and configuration mistakes
// refused at start with a message that names the setting.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { AGENT_BIN, CONTROL_BIN, removeDir, REPO, runNode, scratchDir } from './support/harness';

const run = (bin: string, args: string[]) => runNode(bin, args);

t.test('every command has --help', async (t) => {
  for (const [bin, args, expect] of [
    [CONTROL_BIN, ['--help'], /Usage: teleboot-control <command>/],
    [CONTROL_BIN, ['import', '--help'], /Usage: teleboot-control import <ami\|ansible> FILE[\s\S]*--apply[\s\S]*Example:/],
    [AGENT_BIN, ['--help'], /Usage: teleboot-agent <command>[\s\S]*plan/],
  ] as const) {
    const r = await run(bin, [...args]);
    t.equal(r.code, 0, args.join(' '));
    t.match(r.stdout, expect);
  }
  t.match((await run(AGENT_BIN, ['version'])).stdout, /^teleboot-agent \d+\.\d+\.\d+/);
});

t.test("each subcommand's --help is its own, with an example", async (t) => {
  for (const [bin, args, own] of [
    [AGENT_BIN, ['run', '--help'], /^Usage: teleboot-agent run \[flags\][\s\S]*--config FILE[\s\S]*Example:\n {2}teleboot-agent run/],
    [AGENT_BIN, ['once', '-h'], /^Usage: teleboot-agent once \[flags\][\s\S]*Example:\n {2}teleboot-agent once/],
    [AGENT_BIN, ['plan', '--help'], /^Usage: teleboot-agent plan \[flags\][\s\S]*Example:\n {2}sudo teleboot-agent plan/],
    [AGENT_BIN, ['version', '--help'], /^Usage: teleboot-agent version\n/],
    [
      CONTROL_BIN,
      ['serve', '--help'],
      /^Usage: teleboot-control serve \[flags\][\s\S]*--grpc-listen ADDR[\s\S]*--heartbeat-interval[\s\S]*Examples:\n {2}teleboot-control serve/,
    ],
    [CONTROL_BIN, ['tokens', '--help'], /^Usage: teleboot-control tokens [\s\S]*Example:\n {2}teleboot-control tokens create/],
    [CONTROL_BIN, ['version', '--help'], /^Usage: teleboot-control version\n/],
  ] as const) {
    const r = await run(bin, [...args]);
    t.equal(r.code, 0, args.join(' '));
    t.match(r.stdout, own, `${args.join(' ')}: its own help`);
    t.notMatch(r.stdout, /<command>/, `${args.join(' ')}: not the program's list of commands`);
  }
  const wrong = await run(AGENT_BIN, ['once', '--bogus']);
  t.equal(wrong.code, 64);
  t.match(
    wrong.stderr,
    /Unknown option '--bogus'[\s\S]*Usage: teleboot-agent once/,
    "a subcommand's usage error shows that subcommand's help",
  );
});

t.test('a bad flag value is named by the flag, in words', async (t) => {
  const dir = scratchDir('cli-flags');
  t.teardown(() => removeDir(dir));
  const r = await run(CONTROL_BIN, [
    'serve',
    '--data-dir',
    dir,
    '--heartbeat-interval',
    'often',
    '--grpc-listen',
    'everywhere',
    '--log-level',
    'loud',
  ]);
  t.equal(r.code, 1);
  t.match(r.stderr, /--heartbeat-interval: must be a duration such as 30s, 5m or 1h30m/);
  t.match(r.stderr, /--grpc-listen: must be host:port, for example 0\.0\.0\.0:7443/);
  t.match(r.stderr, /--log-level: must be one of/);
  t.notMatch(r.stderr, /heartbeat_interval|grpc_listen|log_level/, 'not the config keys');
  t.notMatch(r.stderr, /pattern|\\d/, 'no raw regular expression');
});

t.test('unknown commands and flags are usage errors', async (t) => {
  const r = await run(AGENT_BIN, ['start']);
  t.equal(r.code, 64);
  t.match(r.stderr, /unknown command "start"[\s\S]*Usage: teleboot-agent/);
  const f = await run(CONTROL_BIN, ['serve', '--port', '1']);
  t.equal(f.code, 64);
  t.match(f.stderr, /Unknown option '--port'/);
});

t.test('an agent config with a missing or wrong field fails at start, naming it', async (t) => {
  const dir = scratchDir('cli');
  t.teardown(() => removeDir(dir));
  const ca = join(dir, 'ca.pem');
  writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n');
  const valid = {
    control: { endpoints: ['control.internal:7443'], ca_file: ca },
    enrollment: { join_token_file: '/etc/teleboot/join-token' },
  };
  const cases: Array<[string, unknown, RegExp]> = [
    ['missing ca_file', { ...valid, control: { endpoints: ['c:1'] } }, /control\.ca_file: is required/],
    ['missing enrollment', { control: valid.control }, /enrollment: is required/],
    ['no endpoints', { ...valid, control: { ...valid.control, endpoints: [] } }, /control\.endpoints: must NOT have fewer than 1 items/],
    [
      'endpoint without port',
      { ...valid, control: { ...valid.control, endpoints: ['control.internal'] } },
      /control\.endpoints\.0: must be host:port, for example 0\.0\.0\.0:7443/,
    ],
    [
      'endpoint port out of range',
      { ...valid, control: { ...valid.control, endpoints: ['control-a.internal:7443', 'control-b.internal:74430'] } },
      /control\.endpoints\.1: port must be 1-65535, got "control-b\.internal:74430"/,
    ],
    [
      'endpoint with a bad host',
      { ...valid, control: { ...valid.control, endpoints: ['control_a.internal:7443'] } },
      /control\.endpoints\.0: must be host:port with a valid host, got "control_a\.internal:7443"/,
    ],
    [
      'endpoint twice',
      {
        ...valid,
        control: { ...valid.control, endpoints: ['control-a.internal:7443', 'control-b.internal:7443', 'Control-A.internal:7443'] },
      },
      /control\.endpoints\.2: Control-A\.internal:7443 is listed already \(control\.endpoints\.0\); list each control replica once/,
    ],
    ['typo', { ...valid, heartbeat_intreval: '10s' }, /heartbeat_intreval: unknown setting \(check the spelling\)/],
    ['bad duration', { ...valid, heartbeat_interval: 'often' }, /heartbeat_interval: must be a duration such as 30s/],
    ['bad manager', { ...valid, service_manager: { type: 'upstart' } }, /service_manager\.type: must be one of systemd, process/],
    ['unreadable CA', { ...valid, control: { ...valid.control, ca_file: join(dir, 'missing.pem') } }, /control\.ca_file: cannot read/],
  ];
  for (const [name, doc, message] of cases) {
    const file = join(dir, `${name.replace(/\W/g, '-')}.yaml`);
    writeFileSync(file, stringify(doc));
    const r = await run(AGENT_BIN, ['once', '-c', file]);
    t.equal(r.code, 1, name);
    t.match(r.stderr, message, name);
    t.notMatch(r.stderr, /at .*\.js:\d+/, `${name}: no stack trace`);
  }
  const notYaml = join(dir, 'broken.yaml');
  writeFileSync(notYaml, 'control: [unclosed');
  t.match((await run(AGENT_BIN, ['once', '-c', notYaml])).stderr, /is not valid YAML/);
  t.match((await run(AGENT_BIN, ['once', '-c', join(dir, 'nope.yaml')])).stderr, /cannot read .*nope\.yaml/);
});

t.test('the control server refuses a bad configuration at start', async (t) => {
  const dir = scratchDir('cli-control');
  t.teardown(() => removeDir(dir));
  const file = join(dir, 'control.yaml');
  writeFileSync(file, stringify({ data_dir: dir, grpc_listen: 'everywhere', store: { type: 'mysql' } }));
  const r = await run(CONTROL_BIN, ['serve', '-c', file]);
  t.equal(r.code, 1);
  t.match(r.stderr, /grpc_listen: must be host:port/);
  t.notMatch(r.stderr, /pattern|\^|\$"/, 'no raw regular expression');
  t.match(r.stderr, /store\.type: must be one of sqlite/);
});

t.test("the AWS SDK's notice about its Node.js support is not printed to operators, unless they ask for it", async (t) => {
  // A program run through runMain that makes an SDK client, as the agent does for SSM at every boot.
  const script = `require(${JSON.stringify(join(REPO, 'dist/contract/cli.js'))}).runMain(async () => {
    new (require('@aws-sdk/client-ssm').SSMClient)({ region: 'us-east-1' });
    await new Promise((resolve) => setTimeout(resolve, 100)); // Node prints warnings on a later tick
  }, 'usage');`;
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
  delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  const quiet = spawnSync(process.execPath, ['-e', script], { cwd: REPO, env, encoding: 'utf8' });
  t.equal(quiet.status, 0);
  t.equal(quiet.stderr, '', 'nothing on stderr');
  const asked = spawnSync(process.execPath, ['-e', script], {
    cwd: REPO,
    env: { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'false' },
    encoding: 'utf8',
  });
  t.match(asked.stderr, /NodeVersionSupportWarning/, 'the variable set to false brings it back');
});
