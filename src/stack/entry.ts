/**
 * The one entry into the pipeline. Every command (and a target reading the values it recorded) goes through
 * it: the values stage runs once here (merge files and --set, normalize the old chart's keys, default,
 * validate, refuse); then each target compiles the stack once with compileStack for its placement
 * (compileKubernetesStack in targets/kubernetes/render.ts, compileLocalStack in targets/local/placement.ts).
 */
import { mergeValueSources, resolveValues, type ValuesSources } from '../values/load.js';
import type { Values } from '../values/schema.js';

type Tree = Record<string, unknown>;

/** What the values stage hands on: the merged tree as written (a target may record it) and the checked values. */
export interface StackInput {
  raw: Tree;
  values: Values;
}

/** The values stage, from files and --set assignments, or from a tree already merged (a recorded one). */
export function stackInput(sources: ValuesSources | { raw: Tree }): StackInput {
  const raw = 'raw' in sources ? sources.raw : mergeValueSources(sources);
  return { raw, values: resolveValues(raw) };
}
