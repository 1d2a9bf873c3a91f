import { ChaperoneError, type RegisterCommands } from '@chaperone/shared';

export const register: RegisterCommands = (program) => {
  program
    .command('injector')
    .description('Mutating admission webhook: injects the sidecar, keeps webhook TLS and NetworkPolicies')
    .action(() => {
      throw new ChaperoneError('unavailable', 'chaperone injector is not implemented in this version');
    });
};
