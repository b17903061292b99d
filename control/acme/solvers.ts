// The two ways teleboot proves control of a name to the ACME server.
//
// HTTP-01: the key authorizations go into the store, and every control
// replica's challenge listener answers /.well-known/acme-challenge/{token}
// from there, whichever one the CA reaches.
//
// DNS-01: a TXT record _acme-challenge.{name} in the Route 53 zone holding
// the name, upserted in one change and waited on until Route 53 reports it
// INSYNC on its name servers.
import {
  ChangeResourceRecordSetsCommand,
  GetChangeCommand,
  ListHostedZonesByNameCommand,
  Route53Client,
  type Change,
} from '@aws-sdk/client-route-53';
import { sleep } from '../../contract/backoff';
import type { Store } from '../store/store';
import type { ChallengeAnswer, ChallengeSolver } from './issuer';

/** How long a published HTTP-01 answer stays answerable at most. */
const HTTP01_ANSWER_TTL_MS = 60 * 60 * 1000;

export class Http01Solver implements ChallengeSolver {
  readonly type = 'http-01';

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  async present(answers: ChallengeAnswer[]): Promise<void> {
    for (const a of answers) await this.store.putAcmeChallenge(a.token, a.value, a.domain, this.now() + HTTP01_ANSWER_TTL_MS);
  }

  async cleanup(answers: ChallengeAnswer[]): Promise<void> {
    for (const a of answers) await this.store.deleteAcmeChallenge(a.token);
  }
}

/** The hosted zone holding `name`: the one with the longest matching suffix. */
export async function hostedZoneFor(route53: Route53Client, name: string): Promise<{ id: string; name: string }> {
  const fqdn = name.replace(/\.?$/, '.');
  let best: { id: string; name: string } | undefined;
  let marker: { dnsName?: string; zoneId?: string } = {};
  // Zones come sorted by reversed name; walking them all is cheap (a few pages at most).
  for (let page = 0; page < 100; page++) {
    const out = await route53.send(
      new ListHostedZonesByNameCommand({ DNSName: marker.dnsName, HostedZoneId: marker.zoneId, MaxItems: 100 }),
    );
    for (const zone of out.HostedZones ?? []) {
      if (!zone.Id || !zone.Name || zone.Config?.PrivateZone) continue;
      const zoneName = zone.Name.toLowerCase();
      if ((fqdn === zoneName || fqdn.endsWith(`.${zoneName}`)) && zoneName.length > (best?.name.length ?? 0)) {
        best = { id: zone.Id.replace(/^\/hostedzone\//, ''), name: zoneName };
      }
    }
    if (!out.IsTruncated) break;
    marker = { dnsName: out.NextDNSName, zoneId: out.NextHostedZoneId };
  }
  if (!best) throw new Error(`no public Route 53 hosted zone holds ${name}; create one, or set acme.route53.hosted_zone_id`);
  return best;
}

export interface Route53SolverOptions {
  route53: Route53Client;
  /** A fixed zone; otherwise found by name. */
  hostedZoneId?: string;
  /** How long to wait for Route 53 to report the change INSYNC. */
  propagationTimeoutMs: number;
}

export class Route53Solver implements ChallengeSolver {
  readonly type = 'dns-01';

  constructor(private readonly opts: Route53SolverOptions) {}

  /** TXT values per record name: an apex and its wildcard share _acme-challenge.{name}. */
  private static records(answers: ChallengeAnswer[]): Map<string, string[]> {
    const byName = new Map<string, string[]>();
    for (const a of answers) {
      const name = `_acme-challenge.${a.domain.replace(/^\*\./, '')}.`;
      byName.set(name, [...(byName.get(name) ?? []), a.value]);
    }
    return byName;
  }

  private async change(answers: ChallengeAnswer[], action: 'UPSERT' | 'DELETE'): Promise<void> {
    const { route53 } = this.opts;
    // Zones per record name; one change batch per zone.
    const batches = new Map<string, Change[]>();
    for (const [name, values] of Route53Solver.records(answers)) {
      const zoneId = this.opts.hostedZoneId ?? (await hostedZoneFor(route53, name.replace(/^_acme-challenge\./, ''))).id;
      const change: Change = {
        Action: action,
        ResourceRecordSet: { Name: name, Type: 'TXT', TTL: 60, ResourceRecords: values.map((v) => ({ Value: JSON.stringify(v) })) },
      };
      batches.set(zoneId, [...(batches.get(zoneId) ?? []), change]);
    }
    for (const [zoneId, changes] of batches) {
      const out = await route53.send(
        new ChangeResourceRecordSetsCommand({
          HostedZoneId: zoneId,
          ChangeBatch: { Comment: `teleboot ACME dns-01 ${action.toLowerCase()}`, Changes: changes },
        }),
      );
      if (action === 'UPSERT' && out.ChangeInfo?.Id) await this.waitInSync(out.ChangeInfo.Id);
    }
  }

  private async waitInSync(changeId: string): Promise<void> {
    const deadline = Date.now() + this.opts.propagationTimeoutMs;
    for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
      const out = await this.opts.route53.send(new GetChangeCommand({ Id: changeId }));
      if (out.ChangeInfo?.Status === 'INSYNC') return;
      if (Date.now() + delay > deadline)
        throw new Error(
          `Route 53 change ${changeId} still ${out.ChangeInfo?.Status ?? 'unknown'} after ${this.opts.propagationTimeoutMs} ms`,
        );
      await sleep(delay);
    }
  }

  present(answers: ChallengeAnswer[]): Promise<void> {
    return this.change(answers, 'UPSERT');
  }

  cleanup(answers: ChallengeAnswer[]): Promise<void> {
    return this.change(answers, 'DELETE');
  }
}
