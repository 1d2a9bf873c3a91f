/**
 * The policy `chaperone local` applies when no `--policy FILE` is given: a
 * developer's own rights stay usable, but the agent may not delete namespaces
 * or workloads, and sees Secrets with their values masked. Nothing is held for
 * review (there is nobody to ask on a workstation). The built-in rules
 * (docs/policy.md) apply before it, as everywhere.
 */
export const WORKSTATION_POLICY = `apiVersion: chaperone.dev/v1alpha1
kind: GuardrailPolicy
metadata:
  name: workstation
spec:
  defaultAction: allow
  rules:
    - name: no-namespace-deletes
      description: An agent never deletes a namespace.
      match:
        apiGroups: [""]
        resources: [namespaces]
        verbs: [delete, deletecollection]
      action: deny
      message: the agent may not delete namespaces (chaperone local's workstation policy; --policy FILE replaces it)
    - name: no-workload-deletes
      description: An agent never deletes workloads.
      match:
        apiGroups: ["", apps, batch]
        resources: [deployments, statefulsets, daemonsets, replicasets, replicationcontrollers, jobs, cronjobs]
        verbs: [delete, deletecollection]
      action: deny
      message: the agent may not delete workloads; scale them instead, or run the delete yourself (chaperone local's workstation policy; --policy FILE replaces it)
    - name: mask-secret-values
      description: The agent may see which Secrets exist, never their values.
      match:
        resources: [secrets]
        verbs: [get, list, watch]
      action: mask
`;
