import { ChaperoneError, type RegisterCommands } from '@chaperone/shared';

export const register: RegisterCommands = (program) => {
  program
    .command('sidecar')
    .description(
      'Per-pod guard: proxies the Kubernetes API, exec and PostgreSQL, enforces policy, records audit',
    )
    .action(() => {
      throw new ChaperoneError('unavailable', 'chaperone sidecar is not implemented in this version');
    });
};
