/**
 * The slice of the Kubernetes object model the injector reads and writes.
 * Every interface keeps an index signature: fields we do not know about pass
 * through a mutation untouched.
 */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { kind: string; name: string; [k: string]: unknown }[];
  [k: string]: unknown;
}

/** The metadata of an object the injector keeps in a namespace (a NetworkPolicy, a ConfigMap). */
export interface NamespacedMeta {
  name: string;
  namespace: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { apiVersion?: string; fieldPath: string };
    secretKeyRef?: { name?: string; key: string; [k: string]: unknown };
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
  [k: string]: unknown;
}

export interface ContainerPort {
  containerPort: number;
  name?: string;
  protocol?: string;
  [k: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: { prefix?: string; secretRef?: { name?: string; [k: string]: unknown }; [k: string]: unknown }[];
  ports?: ContainerPort[];
  volumeMounts?: VolumeMount[];
  restartPolicy?: string;
  [k: string]: unknown;
}

export interface ProjectedSource {
  serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string };
  configMap?: { name: string; items?: { key: string; path: string }[]; optional?: boolean };
  secret?: { name: string; [k: string]: unknown };
  downwardAPI?: { items: unknown[] };
  [k: string]: unknown;
}

export interface Volume {
  name: string;
  projected?: { sources: ProjectedSource[]; defaultMode?: number };
  secret?: { secretName?: string; [k: string]: unknown };
  emptyDir?: { medium?: string; sizeLimit?: string };
  configMap?: { name: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  serviceAccountName?: string;
  serviceAccount?: string;
  automountServiceAccountToken?: boolean;
  hostNetwork?: boolean;
  shareProcessNamespace?: boolean;
  [k: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec: PodSpec;
  [k: string]: unknown;
}

/** The parts of a label selector the webhook and NetworkPolicy use. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: {
    key: string;
    operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
    values?: string[];
  }[];
}
