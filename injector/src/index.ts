// The injector's public API (the CLI registration, the pure injection and
// validation functions, the webhook server and the object shapes), by room.
export * from './admission/admission-handler.ts';
export * from './admission/admission-review.ts';
export * from './admission/admission-server.ts';
export * from './admission/exemptions.ts';
export * from './admission/explain-injection.ts';
export * from './admission/validation.ts';
export * from './admission/validation-handler.ts';
export * from './admission/webhook-configuration.ts';
export { register } from './cli/cli.ts';
export * from './cli/injector-config.ts';
export * from './controllers/network-policy.ts';
export { type ReconcileAction, reconcileWebhookConfiguration } from './controllers/webhook-controller.ts';
export * from './inject/custody-check.ts';
export * from './inject/injection-config.ts';
export * from './inject/injection-error.ts';
export * from './inject/json-patch.ts';
export * from './inject/mutate.ts';
export * from './inject/skip-reasons.ts';
export * from './inject/status-annotation.ts';
export * from './inject/workload.ts';
export * from './injector-metrics.ts';
export * from './k8s-types.ts';
export * from './names.ts';
