/** One Ingress for every public host of the release, all paths to the router Service. */
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import type { Stack } from '../../stack/model.js';
import type { KubeObject } from './objects.js';
import { publicHosts } from './public-routes.js';
import { ingressEnabled } from '../../values/ingress.js';

export function buildIngress(stack: Stack): KubeObject[] {
  const { ingress } = stack.values;
  if (!ingressEnabled(stack.values)) return [];
  const hosts = publicHosts(stack);
  const router = { service: { name: stack.objectName('router'), port: { number: stack.placement.ports.router } } };
  const tls = hosts.filter((h) => h.tlsSecretName).map((h) => ({ hosts: [h.host], secretName: h.tlsSecretName }));
  return [
    new Ingress({
      metadata: {
        name: stack.objectName('router'),
        labels: stack.labels('router'),
        ...(Object.keys(ingress.annotations).length > 0 ? { annotations: { ...ingress.annotations } } : {}),
      },
      spec: {
        ...(ingress.className ? { ingressClassName: ingress.className } : {}),
        ...(tls.length > 0 ? { tls } : {}),
        rules: hosts.map((h) => ({
          host: h.host,
          http: { paths: h.paths.map((path) => ({ path, pathType: 'Prefix', backend: router })) },
        })),
      },
    }),
  ];
}
