// Every page of a listing, following the "next" cursor, with a progress
// line on a terminal once it takes more than one page.
import type { RestClient } from './client';
import type { Page } from './api';
import { query } from './api';
import { Progress } from './terminal';

export async function fetchAll<T, C extends string | number>(
  client: RestClient,
  path: string,
  params: Record<string, string | number | undefined>,
  what: string,
): Promise<T[]> {
  const items: T[] = [];
  const progress = new Progress();
  let after: C | undefined;
  try {
    for (let page = 1; ; page++) {
      const answer = await client.get<Page<T, C>>(`${path}${query({ ...params, after })}`);
      items.push(...answer.items);
      if (answer.next === undefined || answer.next === null || answer.items.length === 0) return items;
      after = answer.next;
      progress.update(`fetching ${what}: page ${page}, ${items.length} so far…`);
    }
  } finally {
    progress.done();
  }
}
