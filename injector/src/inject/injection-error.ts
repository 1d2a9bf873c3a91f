import { ChaperoneError } from '@chaperone/shared';

/**
 * A pod the injector will not admit: an invalid `chaperone.dev/*` annotation
 * or a spec that cannot be made safe. The message names the annotation or
 * field and says what to change; the webhook returns it to the client.
 */
export class InjectionRejected extends ChaperoneError {
  /** The annotation or field at fault, e.g. `chaperone.dev/kube-port` or `spec.shareProcessNamespace`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super('validation_failed', `${field}: ${message}`, { details: { field } });
    this.name = 'InjectionRejected';
    this.field = field;
  }
}
