// isoTime writes what Date#toISOString writes, for every time a store holds and the edges around them.
import t from 'tap';
import { isoTime } from '../control/rest/iso-time';

t.test('the same text as toISOString', async (t) => {
  const edges = [0, 1, 999, 1000, 59_999, 3_599_999, 86_399_999, 86_400_000, 951_782_400_000, 253_402_300_799_999];
  const outside = [-1, -86_400_001, 253_402_300_800_000, 8.64e15, 1.5];
  for (const ms of [...edges, ...outside]) t.equal(isoTime(ms), new Date(ms).toISOString(), `${ms}`);
  let seed = 7;
  let mismatches = 0;
  for (let i = 0; i < 100_000; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    // Times this century, the same day as the previous one now and then (the cached day).
    const ms = 946_684_800_000 + seed * 1_500 + (i % 3);
    if (isoTime(ms) !== new Date(ms).toISOString()) mismatches++;
  }
  t.equal(mismatches, 0, 'random times of this century');
});
