export * from './evaluate.ts';
export { globMatcher, globToRegExp } from './glob.ts';
export * from './parse.ts';
export { checkSelfProtection } from './self-protection.ts';
export * from './types.ts';
