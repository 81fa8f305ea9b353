/** Element Web on the local target: the build with our config.json, served by the runtime's nginx as `nobody`. */
import { loopback, type LocalProcess, type LocalProcessContext } from '../../kit/local-process.js';
import type { Stack } from '../../stack/model.js';

/** Locally Element is served only with a build to serve (element.webRoot, or the verified release). */
export const elementServedLocally = (stack: Stack) => stack.elementUrl !== undefined && stack.placement.paths.elementWebRoot !== undefined;

export function elementLocalProcess({ stack, dirs, users }: LocalProcessContext): LocalProcess | undefined {
  if (!elementServedLocally(stack)) return undefined;
  const { ports } = stack.placement;
  return {
    package: 'nginx',
    runsIn: 'runtime',
    user: users.nobody,
    // nginx.conf (components/element/nginx.ts) keeps it in the foreground, on loopback, writing only elementRunDir.
    argv: ['nginx', '-c', dirs.elementNginxConfFile, '-e', 'stderr'],
    // SIGQUIT: nginx finishes the requests in flight, then exits.
    stopSignal: 'SIGQUIT',
    health: { kind: 'http', url: `http://${loopback}:${ports.element}/config.json` },
    startTimeoutSeconds: 60,
    ports: { http: ports.element },
  };
}
