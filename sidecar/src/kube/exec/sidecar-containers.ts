/**
 * Which containers of a pod are a Chaperone sidecar or reach into one, and
 * which of the pod's ports lead to a sidecar. Pure, on the pod object as the
 * API server returns it. exec and attach into those containers, and
 * port-forwards to those ports, are refused whatever the policy says (a
 * sidecar holds the pod's real credentials and writes its audit trail).
 *
 * A sidecar is recognised by what it is, not by its name. A container
 * (regular, init or ephemeral):
 * - whose environment names any CHAPERONE_* variable, whatever gives its
 *   value (`value`, `valueFrom`): the contract the injector writes
 *   (injector/src/inject/sidecar-container.ts) — except the
 *   CHAPERONE_DB_<NAME>_HOST and _PORT it gives application containers
 *   (injector/src/inject/redirect.ts), which point at a sidecar;
 * - or whose command runs `chaperone … sidecar`;
 * - or that runs the image of a container recognised so;
 * - or an ephemeral container whose `targetContainerName` is one of those
 *   (`kubectl debug --target=<sidecar>`: it shares the sidecar's processes);
 * - or any container of a pod with a sidecar and `shareProcessNamespace:
 *   true` (through /proc it reaches the sidecar's files and memory; the
 *   injector refuses such pods, this covers one made another way).
 *
 * Its ports: CHAPERONE_KUBE_PORT and CHAPERONE_METRICS_PORT (or the
 * `--kube-port` and `--metrics-port` flags; the sidecar's defaults, 6443 and
 * 9090, when neither is given), the ports of CHAPERONE_DATABASES or
 * `--databases` (`name=port,…`), and its declared containerPorts. When one of
 * them cannot be known from the pod — a value from `valueFrom`, an
 * `envFrom` that may set it, a `$(VAR)` in a flag, a port of 0 (any free
 * port) or a value that is not a port — the ports are unknown, and the caller
 * refuses every port (fail closed).
 */

export interface PodSidecars {
  /** Containers exec and attach may not enter, each with why. */
  readonly containers: ReadonlyMap<string, string>;
  /** The ports sidecars listen on; undefined when they cannot be known (see `unknownPorts`). */
  readonly ports: ReadonlySet<number> | undefined;
  /** Why the ports cannot be known. */
  readonly unknownPorts?: string;
}

interface EnvVar {
  readonly name?: unknown;
  readonly value?: unknown;
  readonly valueFrom?: unknown;
}
interface ContainerLike {
  readonly name?: unknown;
  readonly image?: unknown;
  readonly command?: unknown;
  readonly args?: unknown;
  readonly env?: unknown;
  readonly envFrom?: unknown;
  readonly ports?: unknown;
  readonly targetContainerName?: unknown;
}

const list = <T>(v: unknown): T[] => (Array.isArray(v) ? (v.filter((x) => x !== null) as T[]) : []);
const strings = (v: unknown): string[] => list<unknown>(v).filter((x): x is string => typeof x === 'string');
const envOf = (c: ContainerLike): EnvVar[] => list<EnvVar>(c.env);
const argvOf = (c: ContainerLike): string[] => [...strings(c.command), ...strings(c.args)];

/** `chaperone sidecar`, `/usr/local/bin/chaperone --x sidecar`, `node chaperone.mjs sidecar`. */
const CHAPERONE_PROGRAM = /(^|\/)chaperone(\.[cm]?[jt]s)?$/;

/** What the injector sets in application containers that use a guarded database. */
const DATABASE_REDIRECT = /^CHAPERONE_DB_[A-Z0-9_]+_(HOST|PORT)$/;

/** Why the container is itself a sidecar, or undefined. */
function runsSidecar(c: ContainerLike): string | undefined {
  const named = envOf(c).find(
    (e) => typeof e.name === 'string' && e.name.startsWith('CHAPERONE_') && !DATABASE_REDIRECT.test(e.name),
  );
  if (named) return `its environment sets ${named.name as string}`;
  const argv = argvOf(c);
  const k = argv.findIndex((w) => CHAPERONE_PROGRAM.test(w));
  if (k >= 0 && argv.slice(k + 1).includes('sidecar')) return 'it runs chaperone sidecar';
  return undefined;
}

const PORT_FLAGS: readonly [flag: string, env: string, fallback: number][] = [
  ['--kube-port', 'CHAPERONE_KUBE_PORT', 6443],
  ['--metrics-port', 'CHAPERONE_METRICS_PORT', 9090],
];

/** The values a flag is given in argv (`--flag v`, `--flag=v`). */
function flagValues(argv: readonly string[], flag: string): string[] {
  const out: string[] = [];
  argv.forEach((w, k) => {
    if (w === flag && k + 1 < argv.length) out.push(argv[k + 1] as string);
    else if (w.startsWith(`${flag}=`)) out.push(w.slice(flag.length + 1));
  });
  return out;
}

type Found = { ports: number[] } | { unknown: string };

function asPort(v: string): number | undefined {
  if (!/^\s*\d{1,5}\s*$/.test(v)) return undefined;
  const n = Number(v);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** A sidecar container's ports, or why they cannot be known. */
function portsOf(c: ContainerLike): Found {
  const name = typeof c.name === 'string' ? c.name : '(unnamed)';
  if (list(c.envFrom).length > 0)
    return { unknown: `container ${name} takes environment from envFrom, which may set its ports` };
  const env = envOf(c);
  const argv = argvOf(c);
  const ports: number[] = [];
  /** Every value of one setting (flag and variable); undefined when one cannot be known. */
  const values = (flag: string, variable: string): string[] | { unknown: string } => {
    const out = flagValues(argv, flag);
    if (out.some((v) => v.includes('$(')))
      return { unknown: `container ${name} gives ${flag} through a $(VAR) reference` };
    for (const e of env.filter((e) => e.name === variable)) {
      if (typeof e.value === 'string') out.push(e.value);
      else if (e.valueFrom !== undefined)
        return { unknown: `container ${name} sets ${variable} from valueFrom` };
    }
    return out;
  };
  for (const [flag, variable, fallback] of PORT_FLAGS) {
    const vs = values(flag, variable);
    if (!Array.isArray(vs)) return vs;
    for (const v of vs.length > 0 ? vs : [String(fallback)]) {
      const p = asPort(v);
      if (p === undefined) return { unknown: `container ${name} sets ${variable} to ${JSON.stringify(v)}` };
      ports.push(p);
    }
  }
  const databases = values('--databases', 'CHAPERONE_DATABASES');
  if (!Array.isArray(databases)) return databases;
  for (const entry of databases.flatMap((d) => d.split(',')).filter((d) => d.trim() !== '')) {
    const p = asPort(entry.slice(entry.indexOf('=') + 1));
    if (p === undefined)
      return { unknown: `container ${name} declares a database without a port (${JSON.stringify(entry)})` };
    ports.push(p);
  }
  for (const declared of list<{ containerPort?: unknown }>(c.ports)) {
    const p = typeof declared.containerPort === 'number' ? asPort(String(declared.containerPort)) : undefined;
    if (p !== undefined) ports.push(p);
  }
  return { ports };
}

export function podSidecars(pod: unknown): PodSidecars {
  const spec = (pod as { spec?: Record<string, unknown> } | null)?.spec ?? {};
  const regular = [...list<ContainerLike>(spec.containers), ...list<ContainerLike>(spec.initContainers)];
  const ephemeral = list<ContainerLike>(spec.ephemeralContainers);
  const all = [...regular, ...ephemeral];
  const containers = new Map<string, string>();
  const sidecars: ContainerLike[] = [];
  for (const c of all) {
    const why = runsSidecar(c);
    if (why === undefined || typeof c.name !== 'string') continue;
    containers.set(c.name, why);
    sidecars.push(c);
  }
  const images = new Set(
    sidecars.map((c) => c.image).filter((i): i is string => typeof i === 'string' && i !== ''),
  );
  for (const c of all) {
    if (typeof c.name !== 'string' || containers.has(c.name)) continue;
    if (typeof c.image === 'string' && images.has(c.image)) {
      containers.set(c.name, `it runs the sidecar's image ${c.image}`);
      sidecars.push(c);
    }
  }
  for (const c of ephemeral) {
    const target = c.targetContainerName;
    if (typeof c.name !== 'string' || containers.has(c.name) || typeof target !== 'string') continue;
    if (containers.has(target))
      containers.set(
        c.name,
        `it is a debug container targeting the sidecar container ${target}, whose processes it shares`,
      );
  }
  if (spec.shareProcessNamespace === true && sidecars.length > 0)
    for (const c of all)
      if (typeof c.name === 'string' && !containers.has(c.name))
        containers.set(
          c.name,
          "the pod shares its process namespace with a sidecar (shareProcessNamespace), so its containers reach the sidecar's files through /proc",
        );
  const ports = new Set<number>();
  // Debug containers share the pod's network, not a listener of their own: only sidecars' ports count.
  for (const c of sidecars) {
    const found = portsOf(c);
    if ('unknown' in found) return { containers, ports: undefined, unknownPorts: found.unknown };
    for (const p of found.ports) ports.add(p);
  }
  return { containers, ports };
}
