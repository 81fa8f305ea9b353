/**
 * `mxstack status` of a local stack: read from the state directory, with health checked now. Its own module
 * (only the state files and the health checks) so `status` starts without loading the values and the compiler.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkHealth } from './health.js';
import type { LocalComponentName, LocalEndpoints, SupervisorPlan } from './plan.js';
import { lockHolder, readJsonFile, stateLayout, type SupervisorStatus } from './state.js';

export interface ComponentReport {
  state: string;
  pid?: number;
  healthy: boolean;
  restarts: number;
  ports: Record<string, number>;
  version?: string;
  logFile: string;
}

/** `status --output json`. Other tools rely on these names. */
export interface LocalStackStatus {
  stateDir: string;
  serverName?: string;
  running: boolean;
  healthy: boolean;
  supervisorPid?: number;
  phase?: string;
  endpoints?: LocalEndpoints;
  adminCredentialsFile?: string;
  components: Record<string, ComponentReport>;
}

/** What the supervisor reports, with health checked now from outside (what a client would see). */
export async function localStackStatus(stateDir: string): Promise<LocalStackStatus> {
  const layout = stateLayout(stateDir);
  const plan = readJsonFile<SupervisorPlan>(join(layout.root, 'plan.json'));
  const supervisorPid = lockHolder(layout);
  const status = supervisorPid !== undefined ? readJsonFile<SupervisorStatus>(layout.statusFile) : undefined;
  const running = supervisorPid !== undefined && status?.pid === supervisorPid;
  const components: Record<string, ComponentReport> = {};
  for (const component of plan?.components ?? []) {
    const reported = running ? status?.components[component.name] : undefined;
    const healthy = running && reported?.pid !== undefined ? await checkHealth(component.health) : false;
    components[component.name] = {
      state: reported?.state ?? 'stopped',
      ...(reported?.pid !== undefined ? { pid: reported.pid } : {}),
      healthy,
      restarts: reported?.restarts ?? 0,
      ports: component.ports,
      ...(plan?.versions[component.package] ? { version: plan.versions[component.package] } : {}),
      logFile: layout.logFile(component.name),
    };
  }
  return {
    stateDir: layout.root,
    ...(plan ? { serverName: plan.serverName } : {}),
    running,
    healthy: running && status?.phase === 'running' && Object.values(components).every((c) => c.healthy),
    ...(supervisorPid !== undefined ? { supervisorPid } : {}),
    ...(status && running ? { phase: status.phase } : {}),
    ...(plan ? { endpoints: plan.endpoints } : {}),
    ...(existsSync(layout.adminCredentialsFile) ? { adminCredentialsFile: layout.adminCredentialsFile } : {}),
    components,
  };
}

export const localComponentNames: LocalComponentName[] = ['postgresql', 'auth', 'redis', 'synapse', 'coturn', 'element', 'router'];

/** The components of the stack in a state directory (its plan: workers included), else every fixed name. */
export function stackComponentNames(stateDir: string): string[] {
  const plan = readJsonFile<SupervisorPlan>(join(stateLayout(stateDir).root, 'plan.json'));
  return plan ? plan.components.map((component) => component.name) : localComponentNames;
}
