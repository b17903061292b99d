// Settings carry a version (ETag); a PATCH with If-Match based on settings
// changed since gets 409, so two operators cannot silently overwrite each
// other. Without If-Match a PATCH applies to the settings as they are.
import t from 'tap';
import { startInProcessControl } from './support/in-process';

t.test('settings: ETag and If-Match', async (t) => {
  const control = await startInProcessControl('settings-version');
  t.teardown(() => control.close());
  const read = await control.rest('GET', '/v1/settings');
  const etag = read.headers?.etag;
  t.ok(etag, 'GET /v1/settings has an ETag');

  // Two operators patch what they both read: one wins, the other is told.
  const [first, second] = await Promise.all([
    control.rest('PATCH', '/v1/settings', { clusterName: 'one' }, { 'if-match': etag! }),
    control.rest('PATCH', '/v1/settings', { clusterName: 'two' }, { 'if-match': etag! }),
  ]);
  t.same([first.status, second.status].sort(), [200, 409], 'one wins, the other gets 409');
  const loser = first.status === 409 ? first : second;
  t.match(loser.body.message, /the settings changed since version \d+ \(now version \d+\)/);
  const winner = first.status === 200 ? 'one' : 'two';
  t.equal((await control.rest('GET', '/v1/settings')).body.clusterName, winner, "the winner's change is kept");

  const fresh = (await control.rest('GET', '/v1/settings')).headers?.etag as string;
  t.equal((await control.rest('PATCH', '/v1/settings', { clusterName: 'three' }, { 'if-match': fresh })).status, 200);
  t.equal((await control.rest('PATCH', '/v1/settings', { authAddr: 'auth.internal:3025' })).status, 200, 'no If-Match: applied as is');
  t.match((await control.rest('GET', '/v1/settings')).body, { clusterName: 'three', authAddr: 'auth.internal:3025' });
});
