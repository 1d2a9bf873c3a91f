/**
 * The stage the exec end-to-end tests play on: the stand-in kubelet (a test
 * double: there is no kubelet on this control plane; kubelet-standin.ts)
 * registered as a Node, a namespace with one pod bound to that Node shaped
 * like an injected one (the agent's container `main` and the sidecar's), and
 * a real `chaperone sidecar` process with the given policy in front of the
 * real API server. The agent is kubectl with the sidecar's kubeconfig.
 */
import { join } from 'node:path';
import { createNamespace, kubeInfo, type TestNamespace } from './environment.ts';
import { type KubectlResult, kubectlAsync } from './kubectl.ts';
import { createBoundPod, registerNode, type StandinNode } from './kubelet/node.ts';
import { type KubeletStandin, startKubeletStandin } from './kubelet-standin.ts';
import { type SidecarUnderTest, startSidecar } from './sidecar-harness.ts';

/** Why the exec tests cannot run here, or false. */
export const execStageSkip: string | false =
  kubeInfo().mode !== 'local' &&
  'the stand-in kubelet listens on this machine’s loopback, which only the local control plane reaches';

export interface ExecStage {
  readonly standin: KubeletStandin;
  readonly node: StandinNode;
  readonly ns: TestNamespace;
  readonly sc: SidecarUnderTest;
  readonly pod: string;
  /** kubectl as the agent (through the sidecar). */
  agent(args: readonly string[], input?: string): Promise<KubectlResult>;
  stop(): Promise<void>;
}

export async function startExecStage(o: {
  /** Prefix of the test namespace's name. */
  readonly namespace: string;
  readonly policy: string;
  readonly pod?: string;
  /** More flags for the sidecar (e.g. its collector). */
  readonly sidecarArgs?: readonly string[];
}): Promise<ExecStage> {
  const kube = kubeInfo();
  const pod = o.pod ?? 'target';
  const parts: { standin?: KubeletStandin; node?: StandinNode; ns?: TestNamespace; sc?: SidecarUnderTest } =
    {};
  const stop = async () => {
    await parts.sc?.stop();
    await parts.ns?.delete();
    parts.node?.delete();
    await parts.standin?.stop();
  };
  try {
    parts.standin = await startKubeletStandin({ lifetimeMs: 5 * 60_000 });
    parts.node = registerNode(kube.kubeconfigPath, { port: parts.standin.port });
    parts.ns = await createNamespace(o.namespace);
    await createBoundPod(kube.kubeconfigPath, {
      namespace: parts.ns.name,
      name: pod,
      node: parts.node.name,
      containers: [{ name: 'main' }, { name: 'chaperone-sidecar' }],
    });
    parts.sc = await startSidecar({
      namespace: parts.ns.name,
      policy: o.policy,
      ...(o.sidecarArgs ? { extraArgs: o.sidecarArgs } : {}),
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const { standin, node, ns, sc } = parts as Required<typeof parts>;
  return {
    standin,
    node,
    ns,
    sc,
    pod,
    agent: (args, input) =>
      kubectlAsync(sc.agentKubeconfig, ['--cache-dir', join(sc.dir, 'kube-cache'), ...args], {
        ...(input !== undefined ? { input } : {}),
        timeoutMs: 60_000,
      }),
    stop,
  };
}
