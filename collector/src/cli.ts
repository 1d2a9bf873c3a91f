import { ChaperoneError, type RegisterCommands } from '@chaperone/shared';

export const register: RegisterCommands = (program) => {
  program
    .command('collector')
    .description('Central audit store: authenticated ingest, query API, replay, approvals')
    .action(() => {
      throw new ChaperoneError('unavailable', 'chaperone collector is not implemented in this version');
    });
};
