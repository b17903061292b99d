// teleboot's connection: login writes a 0600 profile the other commands use;
// flags, environment and profile in that order; the token is never printed;
// and each way a connection fails says what to do, with its exit code.
import t from 'tap';
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { certificateValidBetween } from './support/fixtures';
import { spawn } from 'node:child_process';
import { freePort, until } from './support/harness';
import { CLI_BIN, startCliWorld, type CliWorld } from './support/cli';
import { EXIT } from '../cli/exit-codes';

let world: CliWorld;
const NO_CONNECTION = { TELEBOOT_ADDR: '', TELEBOOT_CACERT: '', TELEBOOT_TOKEN: '' };

t.before(async () => {
  world = await startCliWorld('cli-conn');
});
t.teardown(() => world.close());

t.test('login checks the connection, writes a 0600 profile, and the other commands use it', async (t) => {
  const xdg = join(world.home, 'xdg');
  const env = { ...NO_CONNECTION, XDG_CONFIG_HOME: xdg };
  const login = await world.run(['login', '--addr', world.addr, '--ca-cert', world.caFile], env, `${world.control.adminToken}\n`);
  t.equal(login.code, 0, login.stderr);
  const path = join(xdg, 'teleboot', 'profile.json');
  t.match(login.stdout, `profile saved to ${path} (mode 0600)`);
  t.notMatch(login.stdout + login.stderr, world.control.adminToken, 'the token is never printed');
  t.equal(statSync(path).mode & 0o777, 0o600, 'the profile is readable by its owner only');
  t.equal(statSync(join(xdg, 'teleboot')).mode & 0o777, 0o700, 'in a directory of its own');
  t.same(JSON.parse(readFileSync(path, 'utf8')), { addr: world.addr, caCert: world.caFile, token: world.control.adminToken });

  const assigned = await world.run(['assign', 'i-0123456789abcdef0', '--role', 'node'], env);
  t.equal(assigned.code, 0, `a later command connects with the profile alone: ${assigned.stderr}`);
  const listed = await world.run(['instances', 'ls', '-o', 'json'], env);
  t.same(
    JSON.parse(listed.stdout).map((i: { instanceId: string }) => i.instanceId),
    ['i-0123456789abcdef0'],
  );

  const flagWins = await world.run(['instances', 'ls', '--token', 'not-a-token'], env);
  t.equal(flagWins.code, EXIT.access, 'a flag beats the profile');
  const envWins = await world.run(['instances', 'ls'], { ...env, TELEBOOT_TOKEN: 'not-a-token' });
  t.equal(envWins.code, EXIT.access, 'the environment beats the profile');

  const logout = await world.run(['logout'], env);
  t.equal(logout.code, 0);
  t.notOk(existsSync(path), 'logout deletes the profile');
  const after = await world.run(['instances', 'ls'], env);
  t.equal(after.code, EXIT.access, 'without the profile there is no token');
  t.match(after.stderr, /no API token/);
});

t.test('without XDG_CONFIG_HOME the profile is ~/.config/teleboot/profile.json; a refused login writes none', async (t) => {
  const refused = await world.run(['login', '--addr', world.addr, '--ca-cert', world.caFile, '--token', 'tbk_wrong'], NO_CONNECTION);
  t.equal(refused.code, EXIT.access);
  t.match(refused.stderr, /refused the API token \(from --token\)/);
  const path = join(world.home, '.config', 'teleboot', 'profile.json');
  t.notOk(existsSync(path), 'nothing saved for a token the server refused');
  const ok = await world.run(['login', '--addr', world.addr, '--ca-cert', world.caFile], {
    ...NO_CONNECTION,
    TELEBOOT_TOKEN: world.control.adminToken,
  });
  t.equal(ok.code, 0, ok.stderr);
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.notMatch(ok.stdout + ok.stderr, world.control.adminToken);
  t.equal((await world.run(['logout'], NO_CONNECTION)).code, 0);
});

t.test('login at a terminal asks for the token and does not echo it', async (t) => {
  const xdg = join(world.home, 'tty');
  // script(1) gives login a real pseudo-terminal; what it echoes comes back on stdout.
  const proc = spawn(
    'script',
    ['-qec', `${process.execPath} ${CLI_BIN} login --addr ${world.addr} --ca-cert ${world.caFile}`, '/dev/null'],
    {
      env: { ...process.env, ...NO_CONNECTION, HOME: world.home, XDG_CONFIG_HOME: xdg },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let screen = '';
  proc.stdout.on('data', (c: Buffer) => (screen += c.toString()));
  const closed = new Promise<number | null>((done) => proc.on('close', done));
  await until('the prompt', () => screen.includes('API token (input hidden): '), 20_000);
  proc.stdin.write(`${world.control.adminToken}\r`);
  t.equal(await closed, 0, screen);
  t.match(screen, /logged in to https:\/\/127\.0\.0\.1:\d+/);
  t.notMatch(screen, world.control.adminToken, 'the token typed is not on the screen');
  t.equal(JSON.parse(readFileSync(join(xdg, 'teleboot', 'profile.json'), 'utf8')).token, world.control.adminToken);
});

t.test('each connection failure says what to do', async (t) => {
  const other = join(world.home, 'other-ca.pem');
  writeFileSync(
    other,
    (await certificateValidBetween('some-other-ca', new Date(Date.now() - 60_000), new Date(Date.now() + 86_400_000))).fullchain,
  );
  const wrongCa = await world.run(['instances', 'ls', '--ca-cert', other]);
  t.equal(wrongCa.code, EXIT.unreachable);
  t.match(
    wrongCa.stderr,
    `the server's certificate is not signed by CA ${other} (from --ca-cert); pass --ca-cert with the control server's tls/ca.pem`,
  );

  const noCa = await world.run(['instances', 'ls'], { TELEBOOT_CACERT: '' });
  t.equal(noCa.code, EXIT.unreachable);
  t.match(noCa.stderr, /not signed by a CA this machine trusts; pass --ca-cert with the control server's tls\/ca\.pem/);

  const missingCa = await world.run(['instances', 'ls', '--ca-cert', join(world.home, 'nope.pem')]);
  t.equal(missingCa.code, EXIT.usage);
  t.match(missingCa.stderr, /the CA file .*nope\.pem \(from --ca-cert\) does not exist/);

  const unknownToken = await world.run(['instances', 'ls'], { TELEBOOT_TOKEN: 'tbk_expired-or-never-issued' });
  t.equal(unknownToken.code, EXIT.access);
  t.match(unknownToken.stderr, /refused the API token \(from TELEBOOT_TOKEN\).*unknown, revoked or expired; run "teleboot login"/);
  t.notMatch(unknownToken.stderr, 'tbk_expired-or-never-issued', 'not even a wrong token is printed');

  const noToken = await world.run(['instances', 'ls'], { TELEBOOT_TOKEN: '' });
  t.equal(noToken.code, EXIT.access);
  t.match(noToken.stderr, /no API token: run "teleboot login", set TELEBOOT_TOKEN, or pass --token/);

  const monitor = await world.control.rest('POST', '/v1/api-tokens', { name: 'grafana', scope: 'monitor' });
  const readOnly = { TELEBOOT_TOKEN: monitor.body.token as string };
  t.equal((await world.run(['instances', 'ls'], readOnly)).code, 0, 'a monitor token reads');
  const forbidden = await world.run(['assign', 'i-0123456789abcdef1', '--role', 'node'], readOnly);
  t.equal(forbidden.code, EXIT.access);
  t.match(forbidden.stderr, /this needs an API token with scope operator \(yours has monitor\)/);
  t.match(forbidden.stderr, /teleboot tokens api create --name NAME --scope operator/);

  const unknown = await world.run(['instances', 'show', 'i-0000000000000dead']);
  t.equal(unknown.code, EXIT.notFound);
  t.match(unknown.stderr, /instance i-0000000000000dead not found; "teleboot instances ls" lists the known ones/);

  const port = await freePort();
  const refused = await world.run(['instances', 'ls', '--addr', `127.0.0.1:${port}`]);
  t.equal(refused.code, EXIT.unreachable);
  t.match(refused.stderr, `cannot connect to https://127.0.0.1:${port}: connection refused. Is teleboot-control running`);

  const grpcPort = await world.run(['instances', 'ls', '--addr', `127.0.0.1:${world.control.server.grpcPort}`]);
  t.equal(grpcPort.code, EXIT.unreachable);
  t.match(grpcPort.stderr, /not as teleboot-control's REST API; is that its rest_listen address \(not the gRPC port\)/);

  const plain = await world.run(['instances', 'ls', '--addr', world.addr.replace('https:', 'http:')]);
  t.equal(plain.code, EXIT.usage);
  t.match(plain.stderr, /--addr: .* uses http; the control server's REST API is HTTPS only/);
});
