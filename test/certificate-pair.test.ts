// A proxy's certificate and key come from two S3 objects; a renewal writes
// them one after the other. The agent applies them only as a pair.
import t from 'tap';
import { checkKeyPair, MismatchedKeyPairError } from '../agent/converge';
import { certificateValidBetween } from './support/fixtures';

const DAY = 86_400_000;

t.test('a chain and its own key pass; a key of another certificate is refused and retried', async (t) => {
  const now = Date.now();
  const a = await certificateValidBetween('teleport.example.com', new Date(now - DAY), new Date(now + 90 * DAY));
  const b = await certificateValidBetween('teleport.example.com', new Date(now - DAY), new Date(now + 90 * DAY));
  t.doesNotThrow(() => checkKeyPair(a.fullchain, a.privkey, 's3://certs/live/teleport.example.com/fullchain.pem'));
  let refused: unknown;
  try {
    checkKeyPair(b.fullchain, a.privkey, 's3://certs/live/teleport.example.com/fullchain.pem');
  } catch (err) {
    refused = err;
  }
  t.ok(refused instanceof MismatchedKeyPairError, 'a MismatchedKeyPairError, which the agent retries with backoff');
  t.throws(
    () => checkKeyPair(b.fullchain, a.privkey, 's3://certs/live/teleport.example.com/fullchain.pem'),
    { message: /^s3:\/\/certs\/live\/teleport\.example\.com\/fullchain\.pem: the certificate is not for the private key next to it/ },
    'the message names the object and says why',
  );
  t.throws(() => checkKeyPair('not a certificate', a.privkey, 'here'), { message: /^here: the certificate or key cannot be read/ });
});
