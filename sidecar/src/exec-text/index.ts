export {
  CANCEL_LINE,
  DEFAULT_MAX_LINE_BYTES,
  type EvaluatedLine,
  type InputLine,
  type LineDecision,
  StdinFilter,
  type StdinFilterOptions,
  type StdinMode,
  type StdinResult,
} from './stdin-filter.ts';
export {
  DEFAULT_MAX_HOLD_BYTES,
  type MaskKind,
  StreamMasker,
  type StreamMaskerOptions,
} from './stream-masker.ts';
export { MASK_KINDS } from './value-detectors.ts';
