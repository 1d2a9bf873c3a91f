/**
 * Node options the sidecar container runs with (the injector sets them as
 * NODE_OPTIONS; the sidecar benchmark runs the sidecar the same way).
 *
 * A 2 MiB young generation (V8's default is 16 MiB per semi-space) keeps the
 * sidecar's peak RSS under load near 100 MiB instead of ~125 MiB, at no
 * measurable cost in CPU per request (bench/results/sidecar.md).
 */
export const SIDECAR_NODE_OPTIONS = '--max-semi-space-size=2';
