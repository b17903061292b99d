// The teleport.yaml and teleport.service that teleboot writes, role by role.
// Outputs are parsed back (YAML with the yaml library, the unit as INI) and
// compared as structures, never as substrings.
import t from 'tap';
import { TEST_CLUSTER as CLUSTER, TEST_PIN as PIN } from './support/fixtures';
import { parse } from 'yaml';
import type { Assignment, ClusterSettings, ServiceRole } from '../contract/model';
import {
  RenderError,
  renderTeleportConfig,
  renderTeleportYaml,
  requirementsOf,
  teleportConfigToYaml,
  validateTeleportConfig,
  type RenderInput,
  type TeleportConfig,
} from '../contract/render/render';
import { renderProxyEnvironment, renderTeleportUnit } from '../contract/render/systemd-unit';

const FILES = {
  dataDir: '/var/lib/teleport',
  joinTokenFile: '/var/lib/teleboot/join-token',
  certFile: '/var/lib/teleboot/tls/fullchain.pem',
  keyFile: '/var/lib/teleboot/tls/privkey.pem',
};

interface Overrides extends Partial<Omit<Assignment, 'roles' | 'labels' | 'nodename'>> {
  roles?: ServiceRole[];
  labels?: Record<string, string>;
  nodename?: string;
  cluster?: Partial<ClusterSettings>;
  caPins?: string[];
}

function input(o: Overrides = {}): RenderInput {
  const { roles, labels, nodename, cluster: _c, caPins: _p, ...options } = o;
  const assignment: Assignment = { roles: roles ?? ['node'], labels: labels ?? {}, ...options };
  if (nodename !== undefined) assignment.nodename = nodename;
  return {
    assignment,
    cluster: { ...CLUSTER, ...o.cluster },
    instance: { instanceId: 'i-0123456789abcdef0', hostname: 'ip-10-0-1-23', privateIp: '10.0.1.23', region: 'eu-west-1' },
    files: { ...FILES },
    caPins: o.caPins ?? [PIN],
    diagAddr: '127.0.0.1:3000',
  };
}

/** What Teleport would read: the rendered file parsed back. */
const written = (i: RenderInput): any => parse(renderTeleportYaml(i));

const LOG = { output: 'stderr', severity: 'INFO', format: { output: 'text' } };
const JOINS_AUTH = {
  join_params: { token_name: FILES.joinTokenFile, method: 'token' },
  auth_server: CLUSTER.authAddr,
  ca_pin: [PIN],
};
const PROXY = {
  enabled: true,
  listen_addr: '0.0.0.0:3023',
  tunnel_listen_addr: '0.0.0.0:3024',
  web_listen_addr: '0.0.0.0:3080',
  public_addr: ['teleport.example.com:443'],
  ssh_public_addr: 'teleport.example.com:3023',
  tunnel_public_addr: 'teleport.example.com:3024',
  https_keypairs: [{ key_file: FILES.keyFile, cert_file: FILES.certFile }],
};
const AUTH = {
  enabled: true,
  listen_addr: '0.0.0.0:3025',
  cluster_name: 'main',
  public_addr: [CLUSTER.authAddr],
};

/** Problems thrown by renderTeleportYaml, or [] when it renders. */
function problemsOf(i: RenderInput): Array<{ path: string; message: string; setting?: string }> {
  try {
    renderTeleportYaml(i);
    return [];
  } catch (err) {
    if (err instanceof RenderError) return err.problems;
    throw err;
  }
}

t.test('roles', async (t) => {
  t.test('a node joins through the auth service with its token file and the CA pin', async (t) => {
    t.same(written(input({ roles: ['node'], labels: { env: 'prod', team: 'infra' } })), {
      version: 'v3',
      teleport: {
        nodename: 'ip-10-0-1-23',
        data_dir: '/var/lib/teleport',
        ...JOINS_AUTH,
        diag_addr: '127.0.0.1:3000',
        log: LOG,
      },
      auth_service: { enabled: false },
      ssh_service: { enabled: true, listen_addr: '0.0.0.0:3022', labels: { env: 'prod', team: 'infra' } },
      proxy_service: { enabled: false },
    });
  });

  t.test('a proxy joins the auth service the same way and serves the certificate from S3', async (t) => {
    t.same(written(input({ roles: ['proxy'], labels: { env: 'prod' } })), {
      version: 'v3',
      teleport: { nodename: 'ip-10-0-1-23', data_dir: '/var/lib/teleport', ...JOINS_AUTH, diag_addr: '127.0.0.1:3000', log: LOG },
      auth_service: { enabled: false },
      // labels are node labels: a host that runs no node has none
      ssh_service: { enabled: false },
      proxy_service: PROXY,
    });
  });

  t.test('an auth server with dir storage needs no token and no CA pin', async (t) => {
    t.same(written(input({ roles: ['auth'], caPins: [] })), {
      version: 'v3',
      teleport: {
        nodename: 'ip-10-0-1-23',
        data_dir: '/var/lib/teleport',
        diag_addr: '127.0.0.1:3000',
        log: LOG,
        storage: { type: 'dir' },
      },
      auth_service: AUTH,
      ssh_service: { enabled: false },
      proxy_service: { enabled: false },
    });
  });

  t.test('an auth server with DynamoDB keeps events beside the state table and recordings in S3', async (t) => {
    const cfg = written(input({ roles: ['auth'], cluster: { storage: { type: 'dynamodb', tableName: 'main-state' } } }));
    t.same(cfg.teleport.storage, {
      type: 'dynamodb',
      region: 'us-east-1', // the cluster's region when storage names none
      table_name: 'main-state',
      audit_events_uri: ['dynamodb://main-state-events'],
      audit_sessions_uri: 's3://example-teleport/records',
    });
    t.notOk('join_params' in cfg.teleport, 'no join token');
    t.notOk('ca_pin' in cfg.teleport, 'no CA pin');
    t.same(cfg.auth_service, AUTH);
  });

  t.test('explicit storage settings win over the derived ones', async (t) => {
    const storage = {
      type: 'dynamodb' as const,
      tableName: 'state',
      region: 'ap-northeast-1',
      auditEventsUri: ['dynamodb://audit', 'stdout://'],
      auditSessionsUri: 's3://recordings/sessions',
    };
    t.same(written(input({ roles: ['auth'], cluster: { storage } })).teleport.storage, {
      type: 'dynamodb',
      region: 'ap-northeast-1',
      table_name: 'state',
      audit_events_uri: ['dynamodb://audit', 'stdout://'],
      audit_sessions_uri: 's3://recordings/sessions',
    });
  });

  t.test('auth-proxy runs both in one process: no token, no pin, the certificate for the proxy', async (t) => {
    t.same(written(input({ roles: ['auth', 'proxy'], caPins: [] })), {
      version: 'v3',
      teleport: {
        nodename: 'ip-10-0-1-23',
        data_dir: '/var/lib/teleport',
        diag_addr: '127.0.0.1:3000',
        log: LOG,
        storage: { type: 'dir' },
      },
      auth_service: AUTH,
      ssh_service: { enabled: false },
      proxy_service: PROXY,
    });
  });

  t.test('the assigned nodename wins over the hostname', async (t) => {
    t.equal(written(input({ nodename: 'bastion-1' })).teleport.nodename, 'bastion-1');
  });

  t.test('an IPv6 proxy address is advertised in brackets', async (t) => {
    const proxy = written(input({ roles: ['proxy'], cluster: { proxyPublicAddr: '[2001:db8::1]:443' } })).proxy_service;
    t.match(proxy, { public_addr: ['[2001:db8::1]:443'], ssh_public_addr: '[2001:db8::1]:3023', tunnel_public_addr: '[2001:db8::1]:3024' });
  });

  t.test('every service teleboot does not run is switched off explicitly', async (t) => {
    for (const roles of [['node'], ['proxy'], ['auth'], ['auth', 'proxy']] as ServiceRole[][]) {
      const cfg = written(input({ roles, caPins: roles.includes('auth') ? [] : [PIN] }));
      t.same(
        [cfg.auth_service.enabled, cfg.ssh_service.enabled, cfg.proxy_service.enabled],
        [roles.includes('auth'), roles.includes('node'), roles.includes('proxy')],
        roles.join('+'),
      );
    }
  });
});

t.test('requirementsOf says what to fetch before rendering', async (t) => {
  const req = (roles: ServiceRole[]) => requirementsOf({ roles, labels: {} });
  t.same(req(['node']), { joinTokenRole: 'node', caPin: true, proxyCertificate: false });
  t.same(req(['proxy']), { joinTokenRole: 'proxy', caPin: true, proxyCertificate: true });
  t.same(req(['auth']), { caPin: false, proxyCertificate: false });
  t.same(req(['auth', 'proxy']), { caPin: false, proxyCertificate: true });
  t.throws(() => req(['database' as ServiceRole]), RenderError);
});

t.test('validation names the setting that is wrong', async (t) => {
  t.test('an auth server needs a cluster name', async (t) => {
    t.match(problemsOf(input({ roles: ['auth'], cluster: { clusterName: '' } })), [
      { path: 'auth_service.cluster_name', setting: 'cluster.clusterName', message: /must not be empty/ },
    ]);
  });

  t.test('a node needs the auth address to join through', async (t) => {
    t.match(problemsOf(input({ cluster: { authAddr: '' } })), [{ path: 'teleport.auth_server', setting: 'cluster.authAddr' }]);
  });

  t.test('addresses must be host:port', async (t) => {
    for (const bad of [
      'teleport.example.com',
      'teleport.example.com:',
      'teleport.example.com:99999',
      'tele port:443',
      'a:b:443',
      'https://teleport.example.com:443',
    ]) {
      t.match(
        problemsOf(input({ roles: ['proxy'], cluster: { proxyPublicAddr: bad } })),
        [{ path: 'proxy_service.public_addr[0]', setting: 'cluster.proxyPublicAddr', message: /host:port|port/ }],
        bad,
      );
    }
    t.match(problemsOf(input({ cluster: { authAddr: 'auth.example.internal' } })), [{ path: 'teleport.auth_server' }]);
  });

  t.test('label keys must be valid Teleport label keys', async (t) => {
    t.match(problemsOf(input({ labels: { 'bad key': 'x', ok: 'y' } })), [
      { path: 'ssh_service.labels.bad key', setting: 'assignment.labels' },
    ]);
  });

  t.test('DynamoDB storage needs a table', async (t) => {
    t.match(problemsOf(input({ roles: ['auth'], cluster: { storage: { type: 'dynamodb' } } })), [
      { path: 'teleport.storage.table_name', setting: 'cluster.storage.tableName' },
    ]);
  });

  t.test('unknown roles and unsupported combinations are refused', async (t) => {
    t.match(problemsOf(input({ roles: ['database' as ServiceRole] })), [
      { path: 'assignment.roles[0]', message: /unknown role "database"/ },
    ]);
    // proxy+node used to be refused for want of a token valid for both; it now reads tokens/node-proxy.
    t.same(problemsOf(input({ roles: ['proxy', 'node'] })), []);
    // An app service needs a reverse tunnel, and a host running proxy_service cannot join through proxy_server.
    t.match(problemsOf(input({ roles: ['proxy', 'app'], apps: [{ name: 'grafana', uri: 'http://localhost:3000' }] })), [
      { path: 'app_service.enabled', setting: 'assignment.roles', message: /reverse tunnel/ },
    ]);
    t.match(problemsOf(input({ roles: [] })), [{ path: 'assignment.roles' }]);
  });

  t.test('a joiner needs a CA pin, and pins must be sha256 hashes', async (t) => {
    t.match(problemsOf(input({ caPins: [] })), [{ path: 'teleport.ca_pin', setting: 'caPins' }]);
    t.match(problemsOf(input({ caPins: ['md5:abc'] })), [{ path: 'teleport.ca_pin[0]', setting: 'caPins' }]);
  });

  t.test('every problem is listed at once, and the error message names each setting', async (t) => {
    const i = input({ roles: ['proxy'], cluster: { authAddr: '', proxyPublicAddr: 'nope' }, caPins: [] });
    const err = t.throws(() => renderTeleportYaml(i)) as RenderError;
    t.ok(err instanceof RenderError);
    t.same(
      err.problems.map((p) => p.path),
      ['teleport.auth_server', 'teleport.ca_pin', 'proxy_service.public_addr[0]'],
    );
    t.match(err.message, /teleport\.auth_server \(from cluster\.authAddr\)/);
    t.match(err.message, /proxy_service\.public_addr\[0\] \(from cluster\.proxyPublicAddr\)/);
  });
});

t.test('validateTeleportConfig checks a config on its own', async (t) => {
  const node = (): TeleportConfig => renderTeleportConfig(input());
  t.same(validateTeleportConfig(node()), [], 'a rendered node config is valid');

  const noToggle = node() as any;
  delete noToggle.proxy_service.enabled;
  t.match(validateTeleportConfig(noToggle), [{ path: 'proxy_service.enabled', message: /explicitly/ }]);

  const inlineToken = node();
  inlineToken.teleport.join_params = { token_name: 'abc123', method: 'token' };
  t.match(validateTeleportConfig(inlineToken), [{ path: 'teleport.join_params.token_name', message: /absolute path/ }]);

  const proxyServer = renderTeleportConfig(input({ roles: ['proxy'] }));
  proxyServer.teleport.proxy_server = 'teleport.example.com:443';
  delete proxyServer.teleport.auth_server;
  t.match(validateTeleportConfig(proxyServer), [{ path: 'teleport.proxy_server', message: /proxy_service is enabled/ }]);

  const newlineName = node();
  newlineName.teleport.nodename = 'host\nname';
  t.match(validateTeleportConfig(newlineName), [{ path: 'teleport.nodename', message: /line breaks/ }]);
});

t.test('the YAML text', async (t) => {
  t.test('starts with a comment saying teleboot generated it and will overwrite it', async (t) => {
    const [first, second] = renderTeleportYaml(input()).split('\n');
    t.match(first, /^# Generated by teleboot/);
    t.match(second, /^# .*overwrites this file/);
  });

  t.test('is the same text for the same input, whatever order the labels came in', async (t) => {
    const a = renderTeleportYaml(input({ labels: { b: '2', a: '1', c: '3' } }));
    const b = renderTeleportYaml(input({ labels: { c: '3', a: '1', b: '2' } }));
    t.equal(a, b);
    const cfg = parse(a);
    t.same(Object.keys(cfg), ['version', 'teleport', 'auth_service', 'ssh_service', 'proxy_service']);
    t.same(Object.keys(cfg.ssh_service.labels), ['a', 'b', 'c']);
  });

  t.test('hostile label values come back as the same strings and add no keys', async (t) => {
    const labels = {
      newline: 'line one\nline two',
      injection: 'x\nproxy_service:\n  enabled: true',
      colon: 'key: value',
      quotes: `say "hi" and 'bye'`,
      hash: '# not a comment',
      tag: '!!python/object/apply:os.system ["id"]',
      bool11: 'yes',
      merge: '<<',
      empty: '',
      spaces: '  padded  ',
      trailing: 'ends with newline\n',
      tab: 'a\tb',
      unicode: 'café ☕',
    };
    const text = renderTeleportYaml(input({ labels }));
    for (const version of ['1.1', '1.2'] as const) {
      const cfg = parse(text, { version });
      t.same(cfg.ssh_service.labels, labels, `labels read back with YAML ${version}`);
      t.same(Object.keys(cfg), ['version', 'teleport', 'auth_service', 'ssh_service', 'proxy_service']);
      t.same(Object.keys(cfg.ssh_service), ['enabled', 'listen_addr', 'labels']);
      t.same(cfg.proxy_service, { enabled: false });
    }
  });

  t.test('parse(toYaml(cfg)) is cfg for any strings, even ones validation refuses', async (t) => {
    const cfg = renderTeleportConfig(input({ roles: ['auth', 'proxy'], caPins: [] }));
    cfg.teleport.nodename = 'weird: name # with !tag and "quotes"\n- list: item';
    cfg.auth_service = { ...(cfg.auth_service as any), cluster_name: '&anchor *alias %directive @at `tick` ~' };
    cfg.ssh_service = {
      enabled: true,
      listen_addr: '0.0.0.0:3022',
      // JSON.parse, because a "__proto__" key in an object literal sets the prototype instead
      labels: JSON.parse(
        '{"<<": "merge?", "on": "off", "key with space": "v", "__proto__": "not a prototype", "ctrl": "a\\u0000b\\u0085c\\u2028d\\u007f\\ufeff"}',
      ),
      commands: [{ name: 'hostname', command: ['hostname', '--fqdn'], period: '1m0s' }],
    };
    const text = teleportConfigToYaml(cfg);
    t.notMatch(text, /[\u0085\u2028\u2029\u007f\ufeff]/, 'no raw characters a YAML 1.1 reader would break lines at or refuse');
    for (const version of ['1.1', '1.2'] as const) {
      t.same(parse(text, { version }), JSON.parse(JSON.stringify(cfg)), `YAML ${version}`);
    }
    const back = parse(text);
    t.ok(Object.prototype.hasOwnProperty.call(back.ssh_service.labels, '__proto__'), '__proto__ stays a key');
  });
});

/** A systemd unit as {section: {key: [values]}}. */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section: Record<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = out[header[1]] = {};
      continue;
    }
    const eq = line.indexOf('=');
    if (!section || eq < 1) throw new Error(`not a unit line: ${JSON.stringify(line)}`);
    (section[line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return out;
}

t.test('teleport.service', async (t) => {
  const base = { teleportBinary: '/usr/local/bin/teleport', configPath: '/etc/teleport.yaml', pidFile: '/run/teleport.pid' };

  t.test('is shaped like the unit Teleport ships', async (t) => {
    t.same(parseUnit(renderTeleportUnit({ ...base, environmentFile: '/etc/default/teleport' })), {
      Unit: { Description: ['Teleport Service'], After: ['network.target'] },
      Service: {
        Type: ['simple'],
        Restart: ['on-failure'],
        EnvironmentFile: ['-/etc/default/teleport'],
        ExecStart: ['/usr/local/bin/teleport start --config=/etc/teleport.yaml --pid-file=/run/teleport.pid'],
        ExecReload: ['/bin/kill -HUP $MAINPID'],
        PIDFile: ['/run/teleport.pid'],
        LimitNOFILE: ['524288'],
      },
      Install: { WantedBy: ['multi-user.target'] },
    });
  });

  t.test('reads no environment file unless given one', async (t) => {
    t.notOk('EnvironmentFile' in parseUnit(renderTeleportUnit(base)).Service);
  });

  t.test('refuses paths systemd would split or expand', async (t) => {
    for (const [key, value] of [
      ['teleportBinary', '/opt/my teleport/teleport'],
      ['configPath', '/etc/teleport.yaml\nExecStartPre=/bin/sh'],
      ['pidFile', 'run/teleport.pid'],
      ['environmentFile', '/etc/default/%i'],
      ['configPath', '/etc/$HOME.yaml'],
    ]) {
      t.throws(() => renderTeleportUnit({ ...base, [key]: value }), { message: new RegExp(key) }, `${key}=${JSON.stringify(value)}`);
    }
  });
});

t.test('/etc/default/teleport', async (t) => {
  const vars = (text: string) =>
    Object.fromEntries(
      text
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );

  t.test('sets the HTTP CONNECT proxy variables that are given', async (t) => {
    t.same(
      vars(
        renderProxyEnvironment({
          httpsProxy: 'http://proxy.corp:8080/',
          httpProxy: 'http://proxy.corp:8080/',
          noProxy: 'localhost,127.0.0.1,10.0.0.0/8,teleport.example.com:3024',
        }),
      ),
      {
        HTTPS_PROXY: 'http://proxy.corp:8080/',
        HTTP_PROXY: 'http://proxy.corp:8080/',
        NO_PROXY: 'localhost,127.0.0.1,10.0.0.0/8,teleport.example.com:3024',
      },
    );
    t.same(
      vars(renderProxyEnvironment({ httpsProxy: 'proxy.corp:3128' })),
      { HTTPS_PROXY: 'proxy.corp:3128' },
      'host:port alone is accepted, as Teleport adds http://',
    );
    t.same(vars(renderProxyEnvironment({})), {});
  });

  t.test('refuses values that would break the file', async (t) => {
    t.throws(() => renderProxyEnvironment({ httpsProxy: 'http://proxy:8080\nLD_PRELOAD=/tmp/x.so' }), { message: /httpsProxy/ });
    t.throws(() => renderProxyEnvironment({ httpProxy: '"http://proxy:8080"' }), { message: /httpProxy/ });
    t.throws(() => renderProxyEnvironment({ httpProxy: 'ftp://proxy:21' }), { message: /httpProxy/ });
    t.throws(() => renderProxyEnvironment({ noProxy: "localhost,'x'" }), { message: /noProxy/ });
  });
});
