/**
 * A list read a page at a time with the API's cursor, its filters and page
 * size (`limit`) in the page's address: reads the page the address names
 * and makes the pager, whose links keep the filters and the page size.
 */
import { api } from './api.ts';
import { h } from './dom.ts';
import { pickFilters, withParams } from './filters.ts';
import type { Page } from './query-types.ts';

export const PAGE_SIZE = 50;

export async function readPage<T>(
  route: string,
  params: URLSearchParams,
  filters: readonly string[],
  view: string,
): Promise<{ page: Page<T>; pager: HTMLElement }> {
  const cursor = params.get('cursor') ?? undefined;
  const limit = params.get('limit') ?? undefined;
  const page = await api.get<Page<T>>(
    withParams(route, pickFilters(params, filters, { limit: limit ?? String(PAGE_SIZE), cursor })),
  );
  const at = (extra: Record<string, string | undefined>) =>
    withParams(view, pickFilters(params, filters, extra));
  const pager = h(
    'nav',
    { class: 'pager' },
    cursor ? h('a', { href: at({ limit }), class: 'first' }, '« Newest') : null,
    page.nextCursor
      ? h('a', { href: at({ limit, cursor: page.nextCursor }), class: 'next' }, 'Older »')
      : h('span', { class: 'muted' }, page.items.length ? 'Nothing older.' : ''),
  );
  return { page, pager };
}
