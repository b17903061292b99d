// teleboot-control import ami|ansible FILE: prints what teleboot would hold
// for a host set up by Teleport's AMI or by the seed's Ansible roles (the
// cluster settings, a rule or an assignment, the teleport.yaml the host would
// get, rendered by the preview's own code) and every variable it cannot map.
// Nothing is saved without --apply, which goes through the REST API, where
// the change is validated and audited like any other.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parseCommandLine, UsageError } from '../../contract/cli';
import { DEFAULT_CLUSTER_SETTINGS } from '../../contract/settings';
import { InputError } from '../errors';
import { previewConfig, type ConfigPreview } from '../preview';
import { assignmentFromInput } from '../service';
import { applySettingsPatch, validateClusterSettings } from '../validation';
import { planFromAmi } from './ami';
import { planFromAnsible } from './ansible';
import { applyPlan, type RestTarget } from './apply';
import { ROLE_TAG, type ImportPlan } from './plan';
import { parseShellVars, ShellVarsError } from './shell-vars';

export const IMPORT_USAGE = `Usage: teleboot-control import <ami|ansible> FILE [flags]

Reads how a host was set up before teleboot and prints what teleboot would
hold for it: the cluster settings, the rule (or, with --instance-id, the
assignment), the teleport.yaml the host would get, and every variable that
has no teleboot equivalent, with why. Nothing is saved without --apply.

  import ami FILE       the Teleport AMI's /etc/teleport.d/conf (TELEPORT_ROLE=...)
  import ansible FILE   the seed Ansible roles' variables: vars/main.yaml, or the
                        JSON given to ansible-playbook --extra-vars

Flags:
      --instance-id ID  assign the role to this instance instead of creating a rule
                        (needed for roles with options: the AMI's agent role)
      --apply           save through the REST API (validated and audited there)
      --addr HOST:PORT  the control server's REST address (default 127.0.0.1:7080)
      --ca-cert FILE    the CA that signed its certificate (<data-dir>/tls/ca.pem)
      --token-file FILE an admin API token (<data-dir>/admin-token)
      --json            print the plan and the preview as JSON
  -h, --help            show this help

Example:
  teleboot-control import ami /etc/teleport.d/conf
  teleboot-control import ansible vars/main.yaml --apply \\
      --ca-cert control-data/tls/ca.pem --token-file control-data/admin-token
`;

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
}

/** The plan for `kind` from `file`; errors name the file (and line). */
export function planFromFile(kind: 'ami' | 'ansible', file: string, instanceId?: string): ImportPlan {
  const text = readText(file);
  if (kind === 'ami') {
    try {
      return planFromAmi(parseShellVars(text, file), instanceId);
    } catch (err) {
      if (err instanceof ShellVarsError) throw new Error(err.message);
      throw err;
    }
  }
  let vars: unknown;
  try {
    // YAML is a superset of JSON: vars/main.yaml and the --extra-vars JSON read alike.
    vars = parseYaml(text);
  } catch (err) {
    throw new Error(`${file}: not YAML or JSON: ${(err as Error).message}`);
  }
  if (vars === null || typeof vars !== 'object' || Array.isArray(vars))
    throw new Error(`${file}: expected a mapping of variables (teleport_type: ..., teleport_cluster_name: ...)`);
  return planFromAnsible(vars as Record<string, unknown>, instanceId);
}

/** What the preview route would answer for the plan's assignment under the plan's settings (on a fresh control server). */
export function previewPlan(plan: ImportPlan): ConfigPreview {
  const settings = applySettingsPatch(DEFAULT_CLUSTER_SETTINGS, plan.settings);
  validateClusterSettings(settings);
  const assignment = assignmentFromInput(plan.preview);
  return previewConfig({ instanceId: plan.assignments[0]?.instanceId ?? 'preview', identity: null, generation: 0, assignment }, settings);
}

function report(plan: ImportPlan, preview: ConfigPreview | { error: string }): string {
  const out: string[] = [];
  const json = (v: unknown) => JSON.stringify(v, null, 2);
  out.push(`# Imported from ${plan.source}: ${plan.mapped.length} variables mapped, ${plan.unmapped.length} not\n`);
  out.push(`\n## Cluster settings (PATCH /v1/settings)\n${json(plan.settings)}\n`);
  for (const rule of plan.rules) {
    out.push(`\n## Rule (POST /v1/rules): instances tagged ${ROLE_TAG}=${Object.values(rule.selector)[0]} get this role\n${json(rule)}\n`);
  }
  for (const a of plan.assignments) out.push(`\n## Assignment (PUT /v1/instances/${a.instanceId}/assignment)\n${json(a.assignment)}\n`);
  if ('error' in preview) {
    out.push(`\n## The host's teleport.yaml\nnot rendered: ${preview.error}\n`);
  } else {
    out.push(`\n## The host's teleport.yaml (${preview.valid ? 'valid' : 'NOT VALID'}; secrets masked)\n`);
    for (const p of preview.problems) out.push(`problem: ${p.field ?? p.setting ?? p.path}: ${p.message}\n`);
    for (const w of preview.warnings) out.push(`warning: ${w.field ?? w.setting ?? w.path}: ${w.message}\n`);
    if (preview.teleportYaml) out.push(preview.teleportYaml);
    if (preview.unit) out.push(`\n## teleport.service ExecStart\n${/^ExecStart=.*$/m.exec(preview.unit)?.[0] ?? ''}\n`);
  }
  if (plan.unmapped.length > 0) {
    out.push(`\n## Not mapped\n`);
    for (const u of plan.unmapped) out.push(`${u.variable}: ${u.why}\n`);
  }
  return out.join('');
}

export async function importCommand(args: string[], stdout: NodeJS.WritableStream = process.stdout): Promise<number | void> {
  const parsed = parseCommandLine(
    args,
    {
      'instance-id': { type: 'string' },
      apply: { type: 'boolean' },
      addr: { type: 'string' },
      'ca-cert': { type: 'string' },
      'token-file': { type: 'string' },
      json: { type: 'boolean' },
    },
    IMPORT_USAGE,
  );
  const flags = parsed.values;
  const [kind, file, ...extra] = parsed.positionals;
  if (flags.help || kind === undefined) return void stdout.write(IMPORT_USAGE);
  if (kind !== 'ami' && kind !== 'ansible') throw new UsageError(`unknown import "${kind}": use ami or ansible`, IMPORT_USAGE);
  if (!file) throw new UsageError(`import ${kind} needs a FILE`, IMPORT_USAGE);
  if (extra.length > 0) throw new UsageError(`unexpected "${extra[0]}"`, IMPORT_USAGE);

  const plan = planFromFile(kind, file, flags['instance-id']);
  let preview: ConfigPreview | { error: string };
  try {
    preview = previewPlan(plan);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    preview = { error: err.message };
  }
  stdout.write(flags.json ? JSON.stringify({ plan, preview }, null, 2) + '\n' : report(plan, preview));
  if (!flags.apply) {
    if (!flags.json) stdout.write('\nNothing was saved. Run again with --apply (and --ca-cert, --token-file) to save it.\n');
    return 'error' in preview || !preview.valid ? 2 : 0;
  }
  if (!flags['ca-cert'] || !flags['token-file']) throw new UsageError('--apply needs --ca-cert and --token-file', IMPORT_USAGE);
  const target: RestTarget = {
    addr: flags.addr ?? '127.0.0.1:7080',
    ca: readText(flags['ca-cert']),
    token: readText(flags['token-file']).trim(),
  };
  const saved = await applyPlan(plan, target);
  for (const line of saved) stdout.write(`saved: ${line}\n`);
}
