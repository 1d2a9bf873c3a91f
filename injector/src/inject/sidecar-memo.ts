/**
 * Everything injection adds that depends only on the injector configuration
 * and the pod's resolved settings — the sidecar container and volumes, the
 * env and mount each agent container gets, the status annotation's fixed
 * part — built once and shared (frozen, with their JSON text remembered):
 * most pods of a cluster get the same sidecar, and building and serialising
 * it is most of an admission's work. Bounded; keyed by the injector
 * configuration object and the pod's resolved settings.
 */
import type { Container, EnvVar, Volume, VolumeMount } from '../k8s-types.ts';
import { SIDECAR_NAME } from '../names.ts';
import type { InjectionConfig } from './injection-config.ts';
import { freezeJson } from './json-value.ts';
import type { PodSettings } from './pod-overrides.ts';
import { agentEnv, placeholderMount } from './redirect.ts';
import { buildSidecar } from './sidecar-container.ts';
import { buildVolumes } from './sidecar-volumes.ts';
import { statusFormatter } from './status-annotation.ts';

export interface Built {
  readonly sidecar: Container;
  readonly volumes: readonly Volume[];
  /** Set on every agent container and init container (see redirect.ts). */
  readonly agentEnv: readonly EnvVar[];
  readonly agentMount: VolumeMount;
  /** The `chaperone.dev/status` annotation, given the pod's removed token volumes. */
  readonly status: (removedVolumes: readonly string[]) => string;
}

const MAX_ENTRIES = 256;
const memo = new WeakMap<InjectionConfig, Map<string, Built>>();
const bySettings = new WeakMap<PodSettings, Built>();

function build(settings: PodSettings, config: InjectionConfig): Built {
  const { sidecar, volumes, env, mount } = freezeJson({
    sidecar: buildSidecar(settings, config, settings.mode),
    volumes: buildVolumes(settings, config),
    env: agentEnv(settings),
    mount: placeholderMount(),
  });
  const status = statusFormatter({
    version: config.version,
    sidecar: SIDECAR_NAME,
    mode: settings.mode,
    containers: settings.mode === 'classic' ? [SIDECAR_NAME] : [],
    initContainers: settings.mode === 'native' ? [SIDECAR_NAME] : [],
    volumes: volumes.map((v) => v.name),
    kubePort: settings.kubePort,
    metricsPort: settings.metricsPort,
    databases: settings.databases.map((d) => d.name),
  });
  return Object.freeze({ sidecar, volumes, agentEnv: env, agentMount: mount, status });
}

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
    built = build(settings, config);
    byConfig.set(key, built);
  }
  if (Object.isFrozen(settings)) bySettings.set(settings, built);
  return built;
}
