/**
 * The `chaperone.dev/status` annotation: what injection did to the pod, as
 * JSON with a fixed key order and nothing that changes between runs (no
 * timestamps), so injecting twice writes the same value.
 */
import type { SidecarMode } from './injection-config.ts';

export interface InjectionStatus {
  readonly version: string;
  readonly sidecar: string;
  readonly mode: SidecarMode;
  readonly containers: readonly string[];
  readonly initContainers: readonly string[];
  readonly volumes: readonly string[];
  /** Token volumes removed from the agent containers (kept across re-injection). */
  readonly removedVolumes: readonly string[];
  readonly kubePort: number;
  readonly metricsPort: number;
  readonly databases: readonly string[];
}

/**
 * The annotation for everything but `removedVolumes` (the only part that
 * differs between pods with the same settings — token volume names carry a
 * random suffix), serialised once: the result formats a status from its
 * removed-volume list by concatenation, keys in `InjectionStatus` order.
 */
export function statusFormatter(
  s: Omit<InjectionStatus, 'removedVolumes'>,
): (removedVolumes: readonly string[]) => string {
  const head = JSON.stringify({
    version: s.version,
    sidecar: s.sidecar,
    mode: s.mode,
    containers: s.containers,
    initContainers: s.initContainers,
    volumes: s.volumes,
  });
  const tail = JSON.stringify({ kubePort: s.kubePort, metricsPort: s.metricsPort, databases: s.databases });
  const before = `${head.slice(0, -1)},"removedVolumes":`;
  const after = `,${tail.slice(1)}`;
  return (removedVolumes) => before + JSON.stringify(removedVolumes) + after;
}

/** The removed-volume list of an earlier status, or [] when absent or not ours. */
export function previousRemovedVolumes(raw: string | undefined): string[] {
  const removed = parseStatus(raw)?.removedVolumes;
  return Array.isArray(removed)
    ? removed.filter((x): x is string => typeof x === 'string' && x.length <= 253).slice(0, 32)
    : [];
}

export function parseStatus(raw: string | undefined): Partial<InjectionStatus> | undefined {
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as unknown;
    return typeof v === 'object' && v !== null ? (v as Partial<InjectionStatus>) : undefined;
  } catch {
    return undefined;
  }
}
