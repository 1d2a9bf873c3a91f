import type { RegisterCommands } from '@chaperone/shared';

export const register: RegisterCommands = () => {};
