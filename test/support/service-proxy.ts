/**
 * Services of a release reached from the test host through their ClusterIP (the shared test cluster's
 * node routes 198.19.0.0/16; on another cluster the test host must route its Service range too): a
 * loopback TCP proxy forwards a fixed local port to the Service, so clients (a browser, matrix-js-sdk)
 * see one stable URL while pods come and go behind the Service.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { kubectl, type TestCluster } from './kubernetes-cluster.js';

/** The ClusterIP of a Service (for UDP, which the proxy does not carry: TURN is reached directly). */
export async function serviceClusterIp(cluster: TestCluster, namespace: string, service: string): Promise<string> {
  const result = await kubectl(cluster, ['get', 'service', service, '-n', namespace, '-o', 'jsonpath={.spec.clusterIP}']);
  const ip = result.stdout.trim();
  if (result.exitCode !== 0 || !ip) throw new Error(`service ${service} in ${namespace} has no ClusterIP: ${result.stderr.trim()}`);
  return ip;
}

export interface ServiceProxy {
  port: number;
  /** Forget the Service's address (after it was deleted and created again). */
  refresh(): void;
  close(): Promise<void>;
}

/**
 * A loopback TCP proxy to one port of a Service's ClusterIP, looked up when first needed (and again after
 * refresh() or a failed connection): the Service may not exist yet when the proxy starts.
 */
export async function startServiceProxy(cluster: TestCluster, namespace: string, service: string, servicePort: number, localPort: number): Promise<ServiceProxy> {
  let address: Promise<string> | undefined;
  const lookup = () => (address ??= serviceClusterIp(cluster, namespace, service));
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.pause();
    lookup().then(
      (ip) => {
        const upstream = connect({ host: ip, port: servicePort });
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        upstream.on('error', () => {
          address = undefined;
          client.destroy();
        });
        client.on('error', () => upstream.destroy());
        upstream.on('connect', () => {
          client.pipe(upstream);
          upstream.pipe(client);
          client.resume();
        });
      },
      () => {
        address = undefined;
        client.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(localPort, '127.0.0.1', resolve);
  });
  return {
    port: localPort,
    refresh: () => (address = undefined),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
