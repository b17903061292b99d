import t from 'tap';
import { batched, coalesced } from '../control/coalesce';

/** A few turns of the event loop: reads start on the next one. */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

t.test('callers during a read share the next read, never one that started before them', async (t) => {
  let reads = 0;
  const gates: Array<() => void> = [];
  const read = coalesced(() => {
    const n = ++reads;
    return new Promise<number>((resolve) => gates.push(() => resolve(n)));
  });
  const first = read();
  await settle();
  t.equal(reads, 1, 'a read starts on a later turn');
  const [second, third] = [read(), read()];
  await settle();
  t.equal(reads, 1, 'the second and third wait for the first read to end');
  gates[0]();
  t.equal(await first, 1);
  await settle();
  t.equal(reads, 2, 'one read for both waiting callers');
  gates[1]();
  t.same(await Promise.all([second, third]), [2, 2]);
  const [fourth, fifth] = [read(), read()];
  await settle();
  t.equal(reads, 3, 'calls when nothing runs share a read that starts on the next turn');
  gates[2]();
  t.same(await Promise.all([fourth, fifth]), [3, 3]);
});

t.test('a failed read fails its callers only; the next call reads again', async (t) => {
  let fail = true;
  const read = coalesced(async () => {
    if (fail) throw new Error('database unavailable');
    return 'ok';
  });
  await t.rejects(read(), /database unavailable/);
  fail = false;
  t.equal(await read(), 'ok');
});

t.test('keys asked for together are read in one batch; keys asked for during a read go into the next', async (t) => {
  const batches: string[][] = [];
  const gates: Array<() => void> = [];
  const get = batched((keys: string[]) => {
    batches.push([...keys]);
    return new Promise<Map<string, string>>((resolve) =>
      gates.push(() => resolve(new Map(keys.filter((k) => k !== 'unknown').map((k) => [k, k.toUpperCase()])))),
    );
  });
  const first = [get('a'), get('b'), get('a')];
  await settle();
  t.same(batches, [['a', 'b']], 'one read for the keys asked for on one turn, each key once');
  const later = [get('c'), get('unknown')];
  await settle();
  t.equal(batches.length, 1, 'keys asked for during a read wait for it to end');
  gates[0]();
  t.same(await Promise.all(first), ['A', 'B', 'A']);
  await settle();
  t.same(batches[1], ['c', 'unknown'], 'the next read has the keys that waited, not those already read');
  gates[1]();
  t.same(await Promise.all(later), ['C', undefined], 'a key the read did not find gets undefined');
});
