/**
 * What the injector benchmarks share: the AdmissionReview body they send
 * (what the API server sends for a pod of a Deployment, after defaulting and
 * ServiceAccount admission, about 3 KB) and the injector's command line.
 */

/**
 * `chaperone injector` arguments (after the entry file) as the benchmarks run it: certificates from
 * files, no cluster calls on the request path, metrics on, log level warn.
 */
export function injectorArgs(port: number, files: { readonly cert: string; readonly key: string }): string[] {
  return [
    'injector',
    '--listen-address=127.0.0.1',
    `--port=${port}`,
    '--metrics-address=127.0.0.1',
    '--metrics-port=0',
    `--tls-cert-file=${files.cert}`,
    `--tls-key-file=${files.key}`,
    '--no-manage-webhook',
    '--no-network-policies',
    '--sidecar-mode=classic',
    '--shutdown-delay=0s',
    '--log-level=warn',
  ];
}

export function admissionReview(): string {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'planner-7c9f6d4b8-',
      namespace: 'agents',
      labels: { app: 'planner', 'pod-template-hash': '7c9f6d4b8', team: 'research' },
      annotations: { 'prometheus.io/scrape': 'true' },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'planner-7c9f6d4b8',
          uid: '7d1c5f4e-9a44-4a1b-8c1e-6f2f0a9d1c11',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      serviceAccountName: 'planner',
      serviceAccount: 'planner',
      containers: [
        {
          name: 'planner',
          image: 'ghcr.io/example/planner:1.4.2',
          args: ['--model', 'local', '--max-steps', '50'],
          ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
          env: [
            { name: 'LOG_LEVEL', value: 'info' },
            { name: 'OPENAI_API_KEY', valueFrom: { secretKeyRef: { name: 'model-keys', key: 'openai' } } },
            { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
          ],
          resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } },
          volumeMounts: [
            { name: 'work', mountPath: '/work' },
            {
              name: 'kube-api-access-9f2xk',
              mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
              readOnly: true,
            },
          ],
          readinessProbe: {
            httpGet: { path: '/ready', port: 8080, scheme: 'HTTP' },
            timeoutSeconds: 1,
            periodSeconds: 10,
            successThreshold: 1,
            failureThreshold: 3,
          },
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
      ],
      volumes: [
        { name: 'work', emptyDir: {} },
        {
          name: 'kube-api-access-9f2xk',
          projected: {
            defaultMode: 420,
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
              {
                downwardAPI: {
                  items: [
                    { path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
                  ],
                },
              },
            ],
          },
        },
      ],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        {
          key: 'node.kubernetes.io/not-ready',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 300,
        },
        {
          key: 'node.kubernetes.io/unreachable',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 300,
        },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {},
  };
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'd5b1f1a2-3c4d-4e5f-8a9b-0c1d2e3f4a5b',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'agents',
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: '1f0e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  });
}
