/** `mxstack render`: values → Kubernetes manifests on stdout or one file per object. */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { addReleaseOptions, addValuesOptions, valuesFromOptions, type ValuesOptions } from './options.js';

interface RenderOptions extends ValuesOptions {
  release: string;
  namespace: string;
  outputDir?: string;
}

export function registerRenderCommand(program: Command): void {
  addReleaseOptions(
    addValuesOptions(program.command('render').description('render the Kubernetes manifests of the stack (deterministic YAML)')),
  )
    .option('-o, --output-dir <dir>', 'write one file per object into this directory instead of stdout')
    .action(async (options: RenderOptions) => {
      const { compileKubernetesStack, objectFileName, objectToYaml, renderKubernetesObjects, renderKubernetesYaml } = await import('../targets/kubernetes/render.js');
      const { describePublicRoutes } = await import('../targets/kubernetes/public-routes.js');
      const values = await valuesFromOptions(options);
      const stack = compileKubernetesStack(values, { release: options.release, namespace: options.namespace });
      const objects = renderKubernetesObjects(stack);
      process.stderr.write(`${describePublicRoutes(stack).join('\n')}\n`);
      if (!options.outputDir) {
        process.stdout.write(renderKubernetesYaml(objects));
        return;
      }
      // Written to a sibling temporary directory and renamed, so a failure leaves nothing half-written.
      const staging = `${options.outputDir}.mxstack-tmp-${process.pid}`;
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging, { recursive: true });
      try {
        for (const object of objects) writeFileSync(join(staging, objectFileName(object)), objectToYaml(object));
        rmSync(options.outputDir, { recursive: true, force: true });
        renameSync(staging, options.outputDir);
      } catch (error) {
        rmSync(staging, { recursive: true, force: true });
        throw error;
      }
      process.stderr.write(`wrote ${objects.length} objects to ${options.outputDir}\n`);
    });
}
