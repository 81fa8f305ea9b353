/**
 * synapse.additionalConfig is merged into homeserver.yaml last; the keys mxstack itself owns are refused,
 * one sentence per group saying where that setting lives instead.
 */
const ownedKeyGroups: { keys: string[]; reason: string }[] = [
  {
    keys: ['listeners', 'bind_addresses', 'metrics_flags'],
    reason: 'mxstack owns the listeners (its Services, probes and NetworkPolicies depend on them); use synapse.service and synapse.metrics.',
  },
  {
    keys: ['database'],
    reason: 'the database block is written from synapse.database into a Secret (it holds the password); set synapse.database instead.',
  },
  {
    keys: [
      'registration_shared_secret',
      'registration_shared_secret_path',
      'macaroon_secret_key',
      'macaroon_secret_key_path',
      'form_secret',
      'form_secret_path',
      'turn_shared_secret',
      'turn_shared_secret_path',
      'email',
    ],
    reason: 'secrets never go into homeserver.yaml (it is a ConfigMap): mxstack mounts them as files from Secrets; manage them with `mxstack secrets` (email: synapse.server.email).',
  },
  {
    keys: ['signing_key', 'signing_key_path'],
    reason: 'the signing key is the server\'s identity and comes from a Secret; use synapse.signingKey.existingSecret.',
  },
  {
    keys: ['ip_range_whitelist', 'ip_range_blacklist', 'federation_ip_range_blacklist'],
    reason:
      'the ranges Synapse may send requests to are values the NetworkPolicies follow; use synapse.server.federation.ipRangeWhitelist and synapse.server.federation.ipRangeBlacklist (ip_range_blacklist replaces the deprecated federation_ip_range_blacklist).',
  },
  {
    keys: [
      'worker_app',
      'worker_name',
      'instance_map',
      'stream_writers',
      'redis',
      'outbound_federation_restricted_to',
      'federation_sender_instances',
      'pusher_instances',
      'run_background_tasks_on',
      'update_user_directory_from_worker',
      'notify_appservices_from_worker',
      'media_instance_running_background_jobs',
      'worker_replication_secret',
    ],
    reason: 'workers are wired by mxstack (instance map, stream writers, Redis must match the processes it runs); they are not configurable through additionalConfig.',
  },
];

/** One refusal per owned key found in additionalConfig, in the values path form. */
export function additionalConfigProblems(additionalConfig: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(additionalConfig)) {
    const owner = ownedKeyGroups.find((group) => group.keys.includes(key));
    if (owner) problems.push(`synapse.additionalConfig.${key}: ${owner.reason}`);
  }
  return problems;
}
