/** A table with a header row, its rows, and a line saying so when there are none. */
import { type Child, h } from './dom.ts';

export function table(
  cls: string,
  headers: readonly string[],
  rows: readonly HTMLElement[],
  empty: string,
): HTMLTableElement {
  return h(
    'table',
    { class: cls },
    h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', {}, t)))),
    h(
      'tbody',
      {},
      ...(rows.length
        ? rows
        : [h('tr', {}, h('td', { colspan: String(headers.length), class: 'muted' }, empty))]),
    ),
  );
}

/** A row of cells. */
export function row(
  attrs: Readonly<Record<string, string | undefined>>,
  ...cells: readonly Child[]
): HTMLElement {
  return h('tr', attrs, ...cells.map((c) => h('td', {}, c)));
}
