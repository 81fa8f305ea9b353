/** Secrets as files in a pod: one projected volume gathering single keys of several Secrets under chosen names. */
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeProjection } from 'kubernetes-models/v1/VolumeProjection';
import type { SecretRef } from '../stack/model.js';

/** Read-only for the owner and the pod's fsGroup, nobody else. */
export const secretFileMode = 0o440;

/** One secret file a program reads: which Secret key lands under which file name, and why it is there. */
export interface SecretFile {
  ref: SecretRef;
  file: string;
  purpose: string;
}

/** A projected volume gathering one key from each Secret, under the given file names. */
export function projectedSecretVolume(name: string, files: { ref: SecretRef; file: string }[]): IVolume {
  const itemsBySecret = new Map<string, { key: string; path: string }[]>();
  for (const { ref, file } of files) itemsBySecret.set(ref.name, [...(itemsBySecret.get(ref.name) ?? []), { key: ref.key, path: file }]);
  const sources: IVolumeProjection[] = [...itemsBySecret].map(([secretName, items]) => ({ secret: { name: secretName, items } }));
  return { name, projected: { defaultMode: secretFileMode, sources } };
}

/** A `kubernetes.io/tls` Secret as the two files `tls.crt` and `tls.key` (the Secret type's own keys). */
export function tlsSecretVolume(name: string, secretName: string | undefined): IVolume {
  return {
    name,
    secret: { secretName, defaultMode: secretFileMode, items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }] },
  };
}
