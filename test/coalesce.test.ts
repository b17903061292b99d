import t from 'tap';
import { coalesced } from '../control/coalesce';

t.test('callers during a read share the next read, never one that started before them', async (t) => {
  let reads = 0;
  const gates: Array<() => void> = [];
  const read = coalesced(() => {
    const n = ++reads;
    return new Promise<number>((resolve) => gates.push(() => resolve(n)));
  });
  const first = read();
  const [second, third] = [read(), read()];
  await new Promise((r) => setImmediate(r));
  t.equal(reads, 1, 'the second and third wait for the first read to end');
  gates[0]();
  t.equal(await first, 1);
  await new Promise((r) => setImmediate(r));
  t.equal(reads, 2, 'one read for both waiting callers');
  gates[1]();
  t.same(await Promise.all([second, third]), [2, 2]);
  const fourth = read();
  t.equal(reads, 3, 'a call when nothing runs reads at once');
  gates[2]();
  t.equal(await fourth, 3);
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
