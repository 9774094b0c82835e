/**
 * Resuming a comparison from the results already in its output directory: which of them are
 * reused and what to tell the user. Pure (no files, no runs), so that the CLI's accounting is
 * unit-tested here, once.
 */
import { planRuns, shardRuns, type ComparisonResults, type ComparisonSpec, type Shard } from './compare.js';
import { runId, shortHash } from './run.js';

export interface ResumePlan {
  /** Runs planned by the whole comparison (every shard). */
  planned: number;
  /** Runs this invocation (this shard) is responsible for. */
  inShard: number;
  /** Existing finished runs that will be reused (failed runs are rerun). */
  reused: number;
  /** Existing runs whose id is planned here (finished or failed). */
  matching: number;
  /** The existing results came from another comparison (spec or shard changed). */
  differentComparison: boolean;
}

export function planResume(spec: ComparisonSpec, shard: Shard | null, existing?: ComparisonResults): ResumePlan {
  const all = planRuns(spec);
  const ids = new Set(shardRuns(all, shard).map(runId));
  const runs = existing?.runs ?? [];
  const matching = runs.filter((r) => ids.has(r.id));
  return {
    planned: all.length,
    inShard: ids.size,
    reused: matching.filter((r) => r.final.error === undefined).length,
    matching: matching.length,
    differentComparison:
      existing !== undefined &&
      (existing.specHash !== shortHash(spec) || JSON.stringify(existing.shard) !== JSON.stringify(shard)),
  };
}
