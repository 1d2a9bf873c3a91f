/**
 * The sidecar container and volumes for given settings, built once and
 * shared (frozen, with their JSON text remembered): most pods of a cluster
 * get the same sidecar, and building and serialising it is most of an
 * admission's work. Bounded; keyed by the injector configuration object and
 * the pod's resolved settings.
 */
import type { InjectionConfig } from './injection-config.ts';
import { freezeJson } from './json-value.ts';
import type { Container, Volume } from './k8s-types.ts';
import type { PodSettings } from './pod-overrides.ts';
import { buildSidecar } from './sidecar-container.ts';
import { buildVolumes } from './sidecar-volumes.ts';

interface Built {
  readonly sidecar: Container;
  readonly volumes: readonly Volume[];
}

const MAX_ENTRIES = 256;
const memo = new WeakMap<InjectionConfig, Map<string, Built>>();
const bySettings = new WeakMap<PodSettings, Built>();

export function sidecarFor(settings: PodSettings, config: InjectionConfig): Built {
  // Pods without overrides share one settings object: no key to compute.
  const shared = bySettings.get(settings);
  if (shared) return shared;
  let byConfig = memo.get(config);
  if (!byConfig) {
    byConfig = new Map();
    memo.set(config, byConfig);
  }
  const key = JSON.stringify(settings);
  let built = byConfig.get(key);
  if (!built) {
    if (byConfig.size >= MAX_ENTRIES) byConfig.clear();
    built = freezeJson({
      sidecar: buildSidecar(settings, config, settings.mode),
      volumes: buildVolumes(settings, config),
    });
    byConfig.set(key, built);
  }
  if (Object.isFrozen(settings)) bySettings.set(settings, built);
  return built;
}
