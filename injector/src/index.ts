export { register } from './cli.ts';
