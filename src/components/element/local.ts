/** Element Web on the local target: the user's build with our config.json, served by Python's file server. */
import { loopback, type LocalProcess, type LocalProcessContext } from '../../kit/local-process.js';
import type { Stack } from '../../stack/model.js';

/** Locally Element is served only with a build to serve (element.webRoot). */
export const elementServedLocally = (stack: Stack) => stack.elementUrl !== undefined && stack.values.element.webRoot !== undefined;

export function elementLocalProcess({ stack, dirs, users }: LocalProcessContext): LocalProcess | undefined {
  if (!elementServedLocally(stack)) return undefined;
  const { ports } = stack.placement;
  return {
    package: 'python3',
    runsIn: 'runtime',
    user: users.nobody,
    // Element Web is static files: Python's file server is enough behind the router.
    argv: ['python3', '-m', 'http.server', '--bind', loopback, '--directory', dirs.elementRootDir, String(ports.element)],
    stopSignal: 'SIGTERM',
    health: { kind: 'http', url: `http://${loopback}:${ports.element}/config.json` },
    startTimeoutSeconds: 60,
    ports: { http: ports.element },
  };
}
