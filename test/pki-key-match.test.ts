// isKeyOf: the check that the certificate a TLS client presented holds the
// key an enrollment certified (control/grpc/connections.ts binds the
// connection on it), over real keys in each form an agent may send.
import t from 'tap';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { pem } from '../contract/der';
import { importClientPublicKey, isKeyOf } from '../control/pki';

const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
const spkiPem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString();

t.test('the same P-256 key matches; another P-256 key does not', async (t) => {
  const key = p256();
  const enrolled = await importClientPublicKey(spkiPem(key));
  t.equal(isKeyOf(key, enrolled.spkiDer), true, 'the key certified');
  t.equal(isKeyOf(createPublicKey(spkiPem(key)), enrolled.spkiDer), true, 'the same key read again');
  t.equal(isKeyOf(p256(), enrolled.spkiDer), false, 'another key');
});

t.test('a key enrolled in compressed form matches the same key, and only it', async (t) => {
  const key = p256();
  // SPKI of the compressed point (02/03 || x), as OpenSSL reads it.
  const jwk = key.export({ format: 'jwk' });
  const y = Buffer.from(jwk.y!, 'base64url');
  const point = Buffer.concat([Buffer.from([2 + (y[31] & 1)]), Buffer.from(jwk.x!, 'base64url')]);
  const der = Buffer.concat([Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'), point]);
  const enrolled = await importClientPublicKey(pem(der, 'PUBLIC KEY'));
  t.equal(isKeyOf(key, enrolled.spkiDer), true, 'the same key');
  t.equal(isKeyOf(p256(), enrolled.spkiDer), false, 'another key');
});

t.test('keys of another kind or curve never match a P-256 enrollment', async (t) => {
  const enrolled = await importClientPublicKey(spkiPem(p256()));
  t.equal(isKeyOf(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey, enrolled.spkiDer), false, 'P-384');
  t.equal(isKeyOf(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey, enrolled.spkiDer), false, 'secp256k1');
  t.equal(isKeyOf(generateKeyPairSync('ed25519').publicKey, enrolled.spkiDer), false, 'Ed25519');
  t.equal(isKeyOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, enrolled.spkiDer), false, 'RSA');
});
