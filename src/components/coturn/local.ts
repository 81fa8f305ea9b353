/** coturn on the local target: the runtime's turnserver as `turnserver`, reading the conf joined with its secret. */
import { loopback, type LocalProcess, type LocalProcessContext } from '../../kit/local-process.js';

export function coturnLocalProcess({ stack, dirs, users }: LocalProcessContext): LocalProcess | undefined {
  if (!stack.values.coturn.enabled) return undefined;
  const { ports } = stack.placement;
  return {
    package: 'coturn',
    runsIn: 'runtime',
    user: users.turnserver,
    argv: ['turnserver', '-c', dirs.coturnRuntimeConfFile],
    stopSignal: 'SIGTERM',
    health: { kind: 'tcp', host: loopback, port: ports.turn },
    startTimeoutSeconds: 60,
    ports: { turn: ports.turn, relayMin: ports.relayMin, relayMax: ports.relayMax, ...(stack.values.coturn.tls.enabled ? { turns: ports.turns } : {}) },
  };
}
