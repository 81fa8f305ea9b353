/** `mxstack doctor`: parsing and printing only; the checks are in src/ops/doctor/. */
import { Option, type Command } from 'commander';
import { UsageError } from './main.js';
import { addTargetOptions, openTarget, type TargetOptions } from './ops.js';
import { TargetUsageError } from '../ops/target.js';
import { runDoctorChecks, type DoctorEnvironment } from '../ops/doctor/checks.js';
import { kubernetesDoctorEnvironment, localDoctorEnvironment } from '../ops/doctor/environments.js';
import { doctorExitCode, formatDoctorReport, type DoctorReport } from '../ops/doctor/report.js';

interface DoctorOptions extends TargetOptions {
  output: 'text' | 'json';
}

/** The same target the operations commands open, seen through the checks each target supports. */
async function doctorEnvironment(options: DoctorOptions): Promise<DoctorEnvironment> {
  const session = options.accessTokenFile ? { accessTokenFile: options.accessTokenFile } : {};
  const target = await openTarget(options);
  const [{ LocalTarget }, { KubernetesTarget }] = await Promise.all([import('../targets/local/target-adapter.js'), import('../targets/kubernetes/target-adapter.js')]);
  if (target instanceof KubernetesTarget) return kubernetesDoctorEnvironment(target, options.namespace, session);
  if (target instanceof LocalTarget) return localDoctorEnvironment(target, options.stateDir, session);
  throw new Error('doctor supports the local and Kubernetes targets only.');
}

export function registerDoctorCommand(program: Command): void {
  addTargetOptions(
    program
      .command('doctor')
      .description('check a running stack end to end (components, well-known, federation key, TURN allocate, database locale, registration, certificates, metrics); exit 1 on any failure'),
  )
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (options: DoctorOptions) => {
      let report: DoctorReport;
      try {
        report = { checks: await runDoctorChecks(await doctorEnvironment(options)) };
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
