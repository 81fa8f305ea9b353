/** `mxstack doctor`: parsing and printing only; the checks are in src/ops/doctor/. */
import { Command, Option } from 'commander';
import { UsageError } from './main.js';
import { addValuesOptions, type ValuesOptions } from './options.js';
import { mergeValueSources, resolveValues } from '../values/load.js';
import { defaultStateDir } from '../targets/local/state.js';
import { LocalTarget } from '../targets/local/target-adapter.js';
import { KubernetesTarget } from '../targets/kubernetes/target-adapter.js';
import { compileKubernetesStack } from '../targets/kubernetes/render.js';
import { TargetUsageError } from '../ops/target.js';
import { runDoctorChecks, type DoctorEnvironment } from '../ops/doctor/checks.js';
import { kubernetesDoctorEnvironment, localDoctorEnvironment } from '../ops/doctor/environments.js';
import { doctorExitCode, formatDoctorReport, type DoctorReport } from '../ops/doctor/report.js';

interface DoctorOptions extends ValuesOptions {
  stateDir: string;
  kubernetes?: boolean;
  kubeconfig?: string;
  context?: string;
  namespace: string;
  release: string;
  accessTokenFile?: string;
  output: 'text' | 'json';
}

function doctorEnvironment(options: DoctorOptions): DoctorEnvironment {
  const session = options.accessTokenFile ? { accessTokenFile: options.accessTokenFile } : {};
  if (options.kubernetes) {
    const values = resolveValues(mergeValueSources({ files: options.values, sets: options.set }));
    const stack = compileKubernetesStack(values, { release: options.release, namespace: options.namespace });
    const target = new KubernetesTarget(stack, {
      namespace: options.namespace,
      ...(options.kubeconfig ? { kubeconfig: options.kubeconfig } : {}),
      ...(options.context ? { context: options.context } : {}),
    });
    return kubernetesDoctorEnvironment(target, options.namespace, session);
  }
  const given = options.values.length > 0 || options.set.length > 0;
  const target = new LocalTarget({ stateDir: options.stateDir, ...(given ? { rawValues: mergeValueSources({ files: options.values, sets: options.set }) } : {}) });
  return localDoctorEnvironment(target, options.stateDir, session);
}

export function registerDoctorCommand(program: Command): void {
  addValuesOptions(
    program
      .command('doctor')
      .description('check a running stack end to end (components, well-known, federation key, TURN allocate, database locale, registration, certificates, metrics); exit 1 on any failure')
      .addOption(new Option('--state-dir <dir>', 'state directory of the local stack').default(defaultStateDir(), '/var/lib/mxstack/default, or $MXSTACK_STATE_DIR'))
      .option('--kubernetes', 'check the release on a cluster (via kubectl and its public URLs) instead of the local stack')
      .option('--kubeconfig <file>', 'kubeconfig file (with --kubernetes)')
      .option('--context <name>', 'kubeconfig context (with --kubernetes)')
      .option('-n, --namespace <name>', 'Kubernetes namespace (with --kubernetes)', 'matrix')
      .option('--release <name>', 'release name (with --kubernetes)', 'mxstack')
      .option('--access-token-file <file>', 'an admin access token to use instead of the stored admin credentials')
      .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text')),
  ).action(async (options: DoctorOptions) => {
    let environment: DoctorEnvironment;
    try {
      environment = doctorEnvironment(options);
    } catch (error) {
      if (error instanceof TargetUsageError) throw new UsageError(error.message);
      throw error;
    }
    let report: DoctorReport;
    try {
      report = { checks: await runDoctorChecks(environment) };
    } catch (error) {
      if (error instanceof TargetUsageError) throw new UsageError(error.message);
      throw error;
    }
    process.stdout.write(options.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report));
    if (doctorExitCode(report) !== 0) {
      const failed = report.checks.filter((check) => check.status === 'fail').map((check) => check.name);
      // Exit 1 through main's error path; stdout keeps only the report.
      throw new Error(`doctor found ${failed.length} failing check${failed.length === 1 ? '' : 's'}: ${failed.join(', ')}.`);
    }
  });
}
