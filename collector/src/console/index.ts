export { ASSET_TYPES, type ConsoleAssets, findAssetsDir, loadAssets, NOT_BUILT } from './console-assets.ts';
export {
  type Console,
  type ConsoleOptions,
  createConsole,
  isConsolePath,
  withConsole,
} from './console-handler.ts';
export type { RequestHandler } from './in-process-api.ts';
export { openConsole } from './open-console.ts';
export { CONTENT_SECURITY_POLICY } from './security-headers.ts';
