/**
 * Which statements masking cannot make safe, and are denied instead. Masking
 * rewrites plain output columns the server attributes to a masked column
 * (result-masker.ts); a masked column's value that goes anywhere else — an
 * expression, a condition, a sort, a whole row, another table, a view, a
 * function, COPY to a file — would leave unmasked, so a statement that sends
 * it there is refused (mask-facts.ts says where each column goes). So is one
 * that renames or re-parents a masked table (the mask would no longer name
 * it), that reads the server's value statistics (pg_stats lists a column's
 * most common values), or that calls a function running SQL given as text.
 * Pure: facts and masks in, a reason out.
 */
import { maskCoversColumn, type SqlMask } from '@chaperone/shared';
import type { MaskFacts } from './mask-facts.ts';

/** How the masks apply to one relation a statement names. */
export interface RelationMasks {
  /** Masks over its columns, by column name: its own, and those of the tables it contains (inheritance children, partitions). */
  readonly masks: readonly SqlMask[];
  /** A masked relation its definition reads (a view over a masked table): none of its columns can be told apart, so it is denied. */
  readonly through?: string;
  /** The value statistics its definition reads (a view over pg_stats). */
  readonly statistics?: string;
}

/** Views and tables of the server's statistics about column values (most common values, histograms). */
export const VALUE_STATISTICS: ReadonlySet<string> = new Set([
  'pg_stats',
  'pg_stats_ext',
  'pg_stats_ext_exprs',
  'pg_statistic',
  'pg_statistic_ext_data',
]);

/**
 * Functions that run SQL given as text, read a relation named by a string,
 * or return a relation's raw pages: whatever they read, the guard cannot see.
 * By name, in any schema (dblink and tablefunc are extensions).
 */
export const QUERY_FUNCTIONS: ReadonlySet<string> = new Set([
  'query_to_xml',
  'query_to_xml_and_xmlschema',
  'query_to_xmlschema',
  'table_to_xml',
  'table_to_xml_and_xmlschema',
  'table_to_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'schema_to_xml',
  'schema_to_xml_and_xmlschema',
  'schema_to_xmlschema',
  'database_to_xml',
  'database_to_xml_and_xmlschema',
  'database_to_xmlschema',
  'ts_stat',
  'dblink',
  'dblink_exec',
  'dblink_open',
  'dblink_fetch',
  'dblink_send_query',
  'dblink_get_result',
  'crosstab',
  'crosstab2',
  'crosstab3',
  'crosstab4',
  'connectby',
  'get_raw_page',
  'heap_page_items',
  'heap_page_item_attrs',
  'tuple_data_split',
  'bt_page_items',
]);

/** The last part of a name as written (`pg_catalog.query_to_xml` → `query_to_xml`). */
function lastPart(name: string): string {
  const m = /(?:^|\.)("(?:[^"]|"")*"|[^."]+)$/.exec(name);
  const part = m?.[1] ?? name;
  return part.startsWith('"') ? part.slice(1, -1).replaceAll('""', '"') : part;
}

export function isQueryFunction(name: string): boolean {
  return QUERY_FUNCTIONS.has(lastPart(name));
}

/**
 * Why a statement must be denied under `masks`, or undefined. `functions`:
 * the functions it calls, as written; `relationMasks`: how the masks apply
 * to each relation it names (by name alone, or with what the catalog knows).
 */
export function maskDenial(
  facts: MaskFacts,
  functions: readonly string[],
  masks: readonly SqlMask[],
  relationMasks: (relation: string) => RelationMasks,
): string | undefined {
  if (masks.length === 0) return undefined;
  const rules = [...new Set(masks.map((m) => m.rule))].map((r) => `"${r}"`).join(', ');
  const masked = (why: string) => `${why}; columns are masked by rule ${rules}`;
  for (const f of functions) {
    if (isQueryFunction(f)) {
      return masked(
        `${f} reads data the guard cannot see before it runs (SQL given as text, a table named by a string, or raw pages), so masked values could leave through it`,
      );
    }
  }
  const reached = new Map<string, RelationMasks>();
  for (const r of facts.relations) {
    if (VALUE_STATISTICS.has(lastPart(r))) {
      return masked(`${r} shows the most common values of table columns, masked ones included`);
    }
    const m = relationMasks(r);
    if (m.statistics !== undefined) {
      return masked(
        `${r} reads ${m.statistics}, which shows the most common values of table columns, masked ones included`,
      );
    }
    if (m.through !== undefined) {
      return masked(
        `${r} reads masked table ${m.through} in its definition, where its columns cannot be told apart; query ${m.through} itself`,
      );
    }
    if (m.masks.length > 0) reached.set(r, m);
  }
  if (facts.renamesSchema) {
    return masked('renaming a schema would take the tables in it out of the masks that name them');
  }
  if (reached.size === 0) return undefined;
  for (const r of facts.altered) {
    if (reached.has(r)) {
      return masked(
        `the statement changes masked table ${r} (its name, schema, columns, place in a hierarchy, triggers, rules or policies), which could take its values out of the masks`,
      );
    }
  }
  const copy = facts.copy;
  if (copy && copy.to !== 'client' && reached.has(copy.relation)) {
    return masked(`COPY of masked table ${copy.relation} to a server ${copy.to} cannot be masked`);
  }
  for (const use of facts.derived) {
    for (const r of use.relations ?? reached.keys()) {
      const m = reached.get(r);
      const by = m?.masks.find((x) => maskCoversColumn(x, use.column));
      if (!by) continue;
      const what =
        use.column === '*'
          ? `every column of masked table ${r} is read as a whole row (a row value, t.* in an expression, a natural join, * in a subquery or a copied query)`
          : `column "${use.column}" of masked table ${r}${use.relations ? '' : ' (or a column of that name)'} is used in an expression, a condition, a sort or grouping, a subquery, a join, a copy or a code body`;
      return `${what}, where its value cannot be masked: only columns selected as they are (or returned as they are) are masked, by rule "${by.rule}"`;
    }
  }
  return undefined;
}
