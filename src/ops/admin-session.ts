/**
 * An admin session on a target: the access token given by the user (--access-token-file), else the token
 * cached in the `<release>-admin-token` Secret when Synapse still accepts it, else a login, whose token is
 * then cached. Caching keeps a script of many commands clear of Synapse's login rate limit (rc_login).
 *
 * The login: with the stored admin credentials (`<release>-admin-credentials`, m.login.password), or, when
 * the stack has built-in 2FA (Synapse's password login is off), as the admin through the `mxstack-cli`
 * application service (m.login.application_service with its as_token, whose namespace is the admin only).
 */
import { readFileSync } from 'node:fs';
import { AdminApiError, loginWithAppservice, loginWithPassword, SynapseAdminClient, tokenOwner } from './admin-api.js';
import type { SecretKeyRef, Target } from '../targets/target.js';

export interface AdminSessionOptions {
  /** A file holding an admin's access token (first line). */
  accessTokenFile?: string;
}

/** The Secret key caching the CLI's admin access token. */
export function adminTokenRef(target: Target): SecretKeyRef {
  return { name: `${target.stack.release}-admin-token`, key: 'access-token' };
}

/** One device for every CLI login, so repeated logins do not pile up devices on the admin account. */
const cliDeviceId = 'MXSTACKCLI';

function readTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new AdminApiError(`cannot read the access token file ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  const token = text.split('\n')[0]!.trim();
  if (!token) throw new AdminApiError(`the access token file ${file} is empty.`);
  return token;
}

async function adminToken(target: Target, baseUrl: string, options: AdminSessionOptions): Promise<string> {
  if (options.accessTokenFile) return readTokenFile(options.accessTokenFile);
  const cacheRef = adminTokenRef(target);
  const cached = (await target.readSecret(cacheRef))?.trim();
  if (cached && (await tokenOwner(baseUrl, cached))) return cached;
  const session = await adminLogin(target, baseUrl);
  await target.writeSecret(cacheRef, session.accessToken);
  return session.accessToken;
}

/** A fresh login as the admin: through the application service when 2FA is on, else with the stored password. */
async function adminLogin(target: Target, baseUrl: string): Promise<{ userId: string; accessToken: string }> {
  const { adminUsername, adminPassword, auth } = target.stack.secrets;
  const username = (await target.readSecret(adminUsername))?.trim() || target.stack.values.synapse.server.adminUser.username;
  if (target.stack.auth && auth) {
    const asToken = (await target.readSecret(auth.cliAppserviceToken))?.trim();
    if (!asToken) {
      throw new AdminApiError(
        `no mxstack-cli application service token stored in ${auth.cliAppserviceToken.name}/${auth.cliAppserviceToken.key} on ${target.description}; run \`mxstack secrets init\` and start the stack, or pass --access-token-file.`,
      );
    }
    return loginWithAppservice(baseUrl, username, asToken, cliDeviceId);
  }
  const password = await target.readSecret(adminPassword);
  if (password === undefined) {
    throw new AdminApiError(`no admin password stored in ${adminPassword.name}/${adminPassword.key} on ${target.description}; run \`mxstack secrets init\` and start the stack, or pass --access-token-file.`);
  }
  return loginWithPassword(baseUrl, username, password.trim(), cliDeviceId);
}

/** Runs `use` with an admin client; refuses a token that is not an admin's. */
export function withAdmin<T>(target: Target, options: AdminSessionOptions, use: (admin: SynapseAdminClient) => Promise<T>): Promise<T> {
  return target.withSynapse(async (baseUrl) => {
    const token = await adminToken(target, baseUrl, options);
    const admin = new SynapseAdminClient(baseUrl, token, target.stack.serverName);
    await admin.checkAdmin();
    return use(admin);
  });
}
