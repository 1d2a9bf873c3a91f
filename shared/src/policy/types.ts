/**
 * The protocol-neutral request model the guard decides on, and the policy that
 * decides. Kubernetes API calls, exec sessions and SQL statements all become an
 * `Action`; one pure evaluator turns (action, policy) into a `Decision`.
 */
import type { DecisionAction, DecisionRecord, Protocol } from '../audit-event.ts';

export type { DecisionAction, Protocol } from '../audit-event.ts';

export const KUBE_VERBS = [
  'get',
  'list',
  'watch',
  'create',
  'update',
  'patch',
  'delete',
  'deletecollection',
  'proxy',
  'connect',
] as const;

export interface ExecTarget {
  /** `exec`, `attach` or `portforward`. */
  readonly kind: 'exec' | 'attach' | 'portforward';
  /** The command, one element per argv entry (exec only). */
  readonly argv: readonly string[];
  /**
   * The container the session runs in: as named by the request, or the one the
   * API server picks when none is (the pod's only container).
   */
  readonly container?: string;
  /** A terminal is allocated (`tty=true`). */
  readonly tty?: boolean;
  /** The agent's input is attached (`stdin=true`). */
  readonly stdin?: boolean;
  /**
   * Port-forward: the ports asked for — a WebSocket request's `ports=`, or
   * the port of one forwarded connection. Absent (or empty) when a SPDY
   * session opens: its connections name their ports later, and each port is
   * decided then (port-match.ts).
   */
  readonly ports?: readonly number[];
}

export interface SqlStatement {
  /** Parser node type, e.g. `SelectStmt`, `DropStmt`, `DeleteStmt`. */
  readonly kind: string;
  readonly tables: readonly string[];
  readonly columns?: readonly string[];
  /** e.g. `DeleteStmt` without WHERE. */
  readonly unqualified?: boolean;
  /** Friendly kinds read from the parse tree (`select`, `delete-without-where`, `copy-to-program`; sql-match.ts). */
  readonly kinds?: readonly string[];
  /** Tables written (also in `tables`). */
  readonly writes?: readonly string[];
  /** Functions called, qualified as written (`pg_read_file`, `pg_catalog.set_config`). */
  readonly functions?: readonly string[];
  /** Schemas reached as a whole (`DROP SCHEMA s`, `GRANT … ON ALL TABLES IN SCHEMA s`). */
  readonly schemas?: readonly string[];
  /**
   * Relations the statement reaches without naming them, as the database's
   * catalog says (`schema.name`): the tables a view it names reads, the
   * partitions and inheritance children of a table it names, and the tables
   * one it names inherits from or is a partition of. A restrictive rule's
   * `tables` matches them too; an allow rule names only what the statement
   * names.
   */
  readonly reaches?: readonly string[];
  /**
   * A definition that makes the relations it names other names for each
   * other: a view and what it reads, a rule and what it acts on, a partition
   * or inheritance child and its parent (CREATE TABLE … PARTITION OF /
   * INHERITS, ALTER TABLE … ATTACH PARTITION / INHERIT).
   */
  readonly linksRelations?: true;
  /** Why the guard could not read the statement: it is then denied whatever the policy says. */
  readonly problem?: string;
}

export interface Action {
  readonly protocol: Protocol;
  /** Kubernetes verb (`get`, `list`, …); exec sessions normalise to `create`; SQL uses `query`. */
  readonly verb: string;
  /** Authenticated identity the request acts as (`system:serviceaccount:ns:sa`). */
  readonly user?: string;
  readonly namespace?: string;
  readonly apiGroup?: string;
  readonly apiVersion?: string;
  readonly resource?: string;
  readonly subresource?: string;
  readonly name?: string;
  /** Path of a non-resource request (`/healthz`, `/openapi/v2`, `/version`). */
  readonly nonResourceURL?: string;
  /** Impersonation headers present on the request (`Impersonate-User`, …). */
  readonly impersonation?: readonly string[];
  readonly exec?: ExecTarget;
  readonly sql?: { readonly database?: string; readonly statements: readonly SqlStatement[] };
}

/**
 * What a SQL mask rule masks: the columns it names (globs; every column when
 * absent) of the tables it names (globs, qualified as in `sql.tables`; every
 * table when absent).
 */
export interface SqlMask {
  readonly rule: string;
  readonly tables?: readonly string[];
  readonly columns?: readonly string[];
}

export type DecisionReason = 'rule_matched' | 'policy_default' | 'self_protection' | 'no_policy';

/** One reason a built-in rule refused a request, with the field at fault and what to change. */
export interface DecisionCause {
  /** The built-in rule (`chaperone-…`). */
  readonly rule: string;
  /** Where in the object (`spec.template.spec.hostNetwork`), or the request part at fault. */
  readonly field: string;
  readonly message: string;
}

export interface Decision {
  readonly action: DecisionAction;
  /** The rule that decided: a policy rule name, a built-in `chaperone:*` rule, or `default`. */
  readonly rule: string;
  readonly reason: DecisionReason;
  /** What to tell the client; always set for deny and review. */
  readonly message: string;
  /** Fields to mask in responses (mask only). */
  readonly maskFields?: readonly string[];
  /** Exec and attach: the Secrets whose values are masked in the session's output (mask only). */
  readonly maskSecrets?: readonly string[];
  /**
   * SQL: the mask rules in force for the statement's database (allow and
   * mask decisions). Values of their columns are masked in whatever the
   * statement returns, wherever they come from (sql-match.ts).
   */
  readonly sqlMasks?: readonly SqlMask[];
  /** Review only: who must approve, how long the action may wait, and the grant an approval opens. */
  readonly review?: ReviewOptions;
  /** Review only, set by the sidecar once the hold ended: how (recorded in the audit event). */
  readonly approval?: NonNullable<DecisionRecord['approval']>;
  /** Every reason a built-in object check found (the first one is `rule`). */
  readonly causes?: readonly DecisionCause[];
}

/**
 * Conditions of a rule; absent means "any". Every present condition must hold.
 *
 * Restrictive rules (deny, review, mask) match everything a request reaches;
 * allow rules match exactly what they name (evaluate.ts): see `resources`,
 * `namespaces`, `names` and `nonResourceURLs`.
 */
export interface RuleMatch {
  readonly protocols?: readonly Protocol[];
  readonly verbs?: readonly string[];
  readonly apiGroups?: readonly string[];
  /**
   * `secrets`, `deployments/scale`, `pods/*`, `*`. In a deny, review or mask
   * rule a plain resource also matches its subresources (`pods` matches
   * `pods/exec`, `pods/log`, `pods/eviction`); in an allow rule it does not
   * (as in RBAC: name `pods/exec` or `pods/*` to allow exec).
   */
  readonly resources?: readonly string[];
  readonly subresources?: readonly string[];
  /**
   * Globs (`*`, `?`). A request without a namespace matches only `*` in an
   * allow rule; in a deny, review or mask rule a list, watch or
   * deletecollection without a namespace (`GET /api/v1/configmaps`, which
   * serves every namespace's ConfigMaps) matches any `namespaces`, unless its
   * resource is a built-in cluster-scoped one (request-span.ts).
   */
  readonly namespaces?: readonly string[];
  /**
   * Globs. In a deny, review or mask rule a list, watch or deletecollection
   * without a name (from the path or a `metadata.name` fieldSelector) matches
   * any `names`: it serves or deletes those objects too. In an allow rule a
   * request without a name matches only `*`.
   */
  readonly names?: readonly string[];
  /**
   * Globs over the request path (`/healthz`, `/logs/*`). In a deny, review or
   * mask rule a path without `*` also matches itself with a trailing `/` and
   * every path below it (`/logs` matches `/logs/` and `/logs/kube.log`); in an
   * allow rule it matches exactly.
   */
  readonly nonResourceURLs?: readonly string[];
  readonly users?: readonly string[];
  readonly exec?: {
    /** Regular expressions over the command joined with single spaces. */
    readonly commands?: readonly string[];
    /** Globs over argv[0] (its base name also counts: `rm` matches `/bin/rm`). */
    readonly argv0?: readonly string[];
    readonly containers?: readonly string[];
  };
  /**
   * Matches port-forward sessions only. `ports`: port numbers and inclusive
   * `"from-to"` ranges; a deny, review or mask rule matches when any port
   * asked for is listed, an allow rule when every one is (port-match.ts).
   */
  readonly portForward?: {
    readonly ports?: readonly (number | string)[];
  };
  readonly sql?: {
    /** Statement node types (`DropStmt`) or friendly names (`drop`, `truncate`, `delete-without-where`). */
    readonly statements?: readonly string[];
    readonly tables?: readonly string[];
    readonly columns?: readonly string[];
    /** Globs over the functions a statement calls (`pg_read_file`, `dblink*`); qualified as tables are. */
    readonly functions?: readonly string[];
    readonly databases?: readonly string[];
  };
}

export interface Rule {
  readonly name: string;
  readonly description?: string;
  readonly match: RuleMatch;
  readonly action: DecisionAction;
  readonly message?: string;
  /**
   * What a mask rule masks: `fields` of Kubernetes objects (a Secret's data
   * and stringData when absent); `secrets`, the names of Secrets whose values
   * are masked in the output of the exec and attach sessions the rule
   * decides (read in the session pod's namespace when the session opens).
   */
  readonly mask?: { readonly fields: readonly string[]; readonly secrets?: readonly string[] };
  /** Review rules: the spec's `review` defaults completed by the rule's own (always set for review). */
  readonly review?: ReviewOptions;
}

/** How a `review` rule's hold works (approval-protocol.ts carries it to the collector). */
export interface ReviewOptions {
  /** How long the action may wait for its approvals before it counts as denied. */
  readonly timeoutMs: number;
  /** Distinct approvers needed. */
  readonly approvals: number;
  /** Who may approve: user names or `group:<name>`; empty = whoever RBAC lets approve. */
  readonly approvers: readonly string[];
  /** An approval lets the same action from the same pod under the same rule pass for this long (0 = no grant). */
  readonly grantMs: number;
}

/** What the built-in self-protection rules guard; set by the sidecar, not by the policy. */
export interface SelfProtection {
  /** The namespace the guarded pod runs in. */
  readonly namespace?: string;
  /** ConfigMap(s) holding the policy, in that namespace. */
  readonly policyConfigMaps: readonly string[];
  /** Name of the sidecar container (exec and attach into it are refused). */
  readonly sidecarContainer: string;
  /** The injector's own namespace: nothing in it may be changed through the guard. */
  readonly injectorNamespace?: string;
  /**
   * The guarded pod's own name: the agent may not delete or evict it (its
   * unshipped audit events live in the pod's spool).
   */
  readonly pod?: string;
}

export interface Policy {
  readonly apiVersion: 'chaperone.dev/v1alpha1';
  readonly kind: 'GuardrailPolicy';
  readonly name: string;
  readonly defaultAction: 'allow' | 'deny' | 'review';
  readonly defaultMessage?: string;
  /** The spec's review defaults (what `defaultAction: review` and rules without their own use). */
  readonly review: ReviewOptions;
  readonly rules: readonly Rule[];
}
