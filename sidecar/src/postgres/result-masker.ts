/**
 * Masking of result rows. RowDescription names, for each column the server
 * can attribute to a table column, the table's OID and the column's attribute
 * number; the catalog (catalog.ts) names that column, and a column covered by
 * a mask has every value of it replaced in the DataRows that follow, with
 * their lengths recomputed.
 *
 * The replacement never depends on the value — not on its content, its
 * length, nor whether it is NULL — so it tells nothing about it:
 * - text, varchar, char(n) and name columns get `**masked**` (the marker the
 *   Kubernetes guard uses), in text and in binary format alike (the binary
 *   form of these types is the text's bytes), so people and agents see that
 *   a value was masked;
 * - every other type gets NULL, which every client accepts for every type in
 *   both formats, where a marker would be a value the client cannot decode
 *   (an int4 in binary is four bytes; JSON must parse; a uuid has a form).
 * Pure.
 */
import { maskCoversColumn, masksOfCatalogTable, type SqlMask, sqlIdent } from '@chaperone/shared';
import type { FieldDescription } from './backend-decoder.ts';
import type { CatalogRelation } from './catalog.ts';
import { dataRow } from './encode.ts';
import { type ErrorFields, ProtocolError } from './protocol.ts';

export const MASKED_TEXT = '**masked**';
const MASKED_BYTES = Buffer.from(MASKED_TEXT, 'utf8');

/** text, varchar, bpchar (char(n)), name: their binary format is their text. */
const STRING_TYPES = new Set([25, 1043, 1042, 19]);

export function isStringType(typeOid: number): boolean {
  return STRING_TYPES.has(typeOid);
}

/** The value a masked column of this type shows, in either format: the marker, or NULL. */
export function maskedValue(typeOid: number): Buffer | null {
  return isStringType(typeOid) ? MASKED_BYTES : null;
}

export interface ColumnPlan {
  /** The rule whose mask covers this column, if any. */
  readonly maskedBy?: string;
  readonly typeOid: number;
}

export function catalogName(schema: string, name: string): string {
  return `${sqlIdent(schema)}.${sqlIdent(name)}`;
}

/**
 * The masks over a relation's columns by name: its own, those of the tables
 * it contains or reads, and those of the tables it inherits from or is a
 * partition of (read by its own name, a child's rows are the parent's).
 */
export function relationMasks(rel: CatalogRelation, masks: readonly SqlMask[]): SqlMask[] {
  const names = [rel, ...rel.members, ...rel.ancestors].map((m) => catalogName(m.schema, m.name));
  return [...new Set(names.flatMap((n) => masksOfCatalogTable(masks, n)))];
}

/**
 * The mask over one of a relation's columns (`over`: the relation's masks):
 * one covering its name, or — for a generated column — one covering a column
 * it is computed from (its values are the masked column's, transformed). A
 * column the catalog does not show (added in the agent's transaction) is
 * covered by any mask over the relation.
 */
export function columnMask(
  rel: CatalogRelation,
  over: readonly SqlMask[],
  attnum: number,
): SqlMask | undefined {
  const column = rel.columns.get(attnum);
  if (!column) return over[0];
  for (const name of [column.name, ...(column.generatedFrom ?? []).map((n) => rel.columns.get(n)?.name)]) {
    const by = name === undefined ? undefined : over.find((m) => maskCoversColumn(m, name));
    if (by) return by;
  }
  return undefined;
}

/**
 * Which columns of a result are masked. `relation` answers from the catalog
 * for every table OID of `fields` (undefined: no such relation the sidecar
 * can see — one created in the agent's own transaction, holding only what
 * the agent wrote).
 */
export function resultPlan(
  fields: readonly FieldDescription[],
  relation: (oid: number) => CatalogRelation | undefined,
  masks: readonly SqlMask[],
): ColumnPlan[] {
  return fields.map((f) => {
    const rel = f.tableOid === 0 ? undefined : relation(f.tableOid);
    if (!rel || masks.length === 0) return { typeOid: f.typeOid };
    const by = columnMask(rel, relationMasks(rel, masks), f.column);
    return by ? { maskedBy: by.rule, typeOid: f.typeOid } : { typeOid: f.typeOid };
  });
}

export function masksAny(plan: readonly ColumnPlan[]): boolean {
  return plan.some((c) => c.maskedBy !== undefined);
}

/**
 * A DataRow with the masked columns' values replaced: the new message, and
 * how many values were replaced per rule. A row whose column count differs
 * from its description's is not what the protocol allows: a ProtocolError.
 */
export function maskRow(
  values: readonly (Buffer | null)[],
  plan: readonly ColumnPlan[],
): { raw: Buffer; masked: ReadonlyMap<string, number> } {
  if (values.length !== plan.length) {
    throw new ProtocolError(
      `a DataRow has ${values.length} columns where its RowDescription has ${plan.length}`,
    );
  }
  const masked = new Map<string, number>();
  const out = values.map((v, i) => {
    const c = plan[i] as ColumnPlan;
    if (c.maskedBy === undefined) return v;
    masked.set(c.maskedBy, (masked.get(c.maskedBy) ?? 0) + 1);
    return maskedValue(c.typeOid);
  });
  return { raw: dataRow(out), masked };
}

/**
 * Fields of an ErrorResponse or NoticeResponse that name things without
 * holding values: severity, SQLSTATE, message, and the schema, table,
 * column, data type and constraint names.
 */
const NAMING_FIELDS = ['S', 'V', 'C', 'M', 's', 't', 'c', 'd', 'n'];

/**
 * An error or notice of a statement that reads a masked table, without what
 * could quote a value: the detail ("Failing row contains (…)", "Key (…)=(…)
 * already exists"), the hint, the context (function arguments), the internal
 * query; and a message raised by PL/pgSQL code (RAISE, in a trigger or a
 * function) is withheld, since the code chose what it says.
 */
export function withoutValues(f: ErrorFields): ErrorFields {
  const out: Record<string, string> = {};
  for (const k of NAMING_FIELDS) if (f[k] !== undefined) out[k] = f[k];
  if (f.R === 'exec_stmt_raise') {
    out.M = 'a message raised by PL/pgSQL code was withheld: the statement reads masked columns';
  }
  return out;
}
