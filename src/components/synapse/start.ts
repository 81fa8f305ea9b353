/**
 * The start step of every Synapse process (the main process and any worker) on both targets: a constant
 * Python script (python3 and PyYAML come with Synapse) shipped beside homeserver.yaml. The targets differ
 * only in placement (placement.paths, and which Python runs it), never in what is joined.
 */
import { posix } from 'node:path';
import type { DatabaseField, Stack } from '../../stack/model.js';
import { databaseFieldFiles, synapseSecretFiles } from '../../stack/model.js';

export type ConnectionField = Exclude<DatabaseField, 'ca'>;

/**
 * The database connection fields that may come from Secrets (stack.database.fromSecret): each is a file in
 * placement.paths.synapseSecretsDir, and its key in the database block's `args`. The start step joins a
 * field in when its file is there (the projected secret volume holds only the fields that come from Secrets).
 */
export const synapseDatabaseFieldFiles: Record<ConnectionField, { file: string; arg: string; integer?: true }> = {
  host: { file: databaseFieldFiles.host, arg: 'host' },
  port: { file: databaseFieldFiles.port, arg: 'port', integer: true },
  name: { file: databaseFieldFiles.name, arg: 'dbname' },
  user: { file: databaseFieldFiles.user, arg: 'user' },
  sslmode: { file: databaseFieldFiles.sslmode, arg: 'sslmode' },
};

export const databaseConnectionFields = Object.keys(synapseDatabaseFieldFiles) as ConnectionField[];

/** Every file of placement.paths.synapseSecretsDir the start step reads (Synapse itself never reads them). */
export const synapseStartStepFiles: ReadonlySet<string> = new Set([
  synapseSecretFiles.databasePassword,
  synapseSecretFiles.smtpPassword,
  ...Object.values(synapseDatabaseFieldFiles).map(({ file }) => file),
]);

/** The fields as the script reads them: file name → [args key, 1 when an integer]. This JSON (strings and numbers) is a Python literal. */
const scriptDatabaseFields = JSON.stringify(Object.fromEntries(Object.values(synapseDatabaseFieldFiles).map(({ file, arg, integer }) => [file, [arg, integer ? 1 : 0]])));

/** The script's file name in placement.paths.synapseConfigDir (a ConfigMap key on Kubernetes). */
export const synapseStartScriptFile = 'synapse-start.py';

/** The joined database and email blocks, passwords included, in placement.paths.synapseRuntimeDir. */
export const synapseJoinedConfigFile = 'joined-secrets.yaml';

export const synapseStartScript = `"""Starts a Synapse process (main or worker) with its database and SMTP passwords joined in.

Synapse reads these two passwords only inline (there is no *_path for them), so homeserver.yaml carries
the database and email blocks without them, and without the database connection fields that come from
Secrets. This step reads the blocks from the --config-path files of the command it is given, adds each
password and each such field from its file in SECRETS_DIR, writes the joined blocks
(readable by this user only) to JOINED_FILE in a memory-backed directory, and replaces itself with
Synapse, given JOINED_FILE as its last --config-path (Synapse replaces top-level keys file by file).
The passwords never appear in a command line or the environment.

With MXSTACK_SYNAPSE_JEMALLOC=1 in its environment (synapse.jemalloc true), it preloads jemalloc as the
entrypoint of Synapse's own image (which this step replaces) does: when the image or runtime has it and
LD_PRELOAD is not already set. An LD_PRELOAD given to the process is left as it is.

usage: python3 synapse-start.py SECRETS_DIR JOINED_FILE -m synapse.app.<app> --config-path FILE ...
"""
import os
import platform
import sys

import yaml

DATABASE_PASSWORD_FILE = "${synapseSecretFiles.databasePassword}"
SMTP_PASSWORD_FILE = "${synapseSecretFiles.smtpPassword}"
# file name -> [key in the database block's args, 1 when an integer]
DATABASE_FIELD_FILES = ${scriptDatabaseFields}
JEMALLOC = "/usr/lib/%s-linux-gnu/libjemalloc.so.2" % platform.machine()


def config_paths(command):
    paths = []
    for index, arg in enumerate(command):
        if arg == "--config-path" and index + 1 < len(command):
            paths.append(command[index + 1])
        elif arg.startswith("--config-path="):
            paths.append(arg.split("=", 1)[1])
    return paths


def read_blocks(paths):
    blocks = {}
    for path in paths:
        with open(path, encoding="utf-8") as stream:
            config = yaml.safe_load(stream) or {}
        for key in ("database", "email"):
            if key in config:
                blocks[key] = config[key]
    return blocks


def read_secret_file(secrets_dir, name):
    path = os.path.join(secrets_dir, name)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return stream.read().strip()


def database_fields(secrets_dir):
    fields = {}
    for name, (arg, integer) in DATABASE_FIELD_FILES.items():
        value = read_secret_file(secrets_dir, name)
        if value is None:
            continue
        if integer and not value.isdigit():
            sys.exit("synapse-start.py: %s in %s is not a port number" % (name, secrets_dir))
        fields[arg] = int(value) if integer else value
    return fields


def joined_blocks(blocks, secrets_dir):
    joined = {}
    database_password = read_secret_file(secrets_dir, DATABASE_PASSWORD_FILE)
    database = blocks.get("database")
    if isinstance(database, dict) and isinstance(database.get("args"), dict) and database_password is not None:
        args = dict(database["args"], **database_fields(secrets_dir))
        joined["database"] = dict(database, args=dict(args, password=database_password))
    smtp_password = read_secret_file(secrets_dir, SMTP_PASSWORD_FILE)
    email = blocks.get("email")
    if isinstance(email, dict) and smtp_password is not None:
        joined["email"] = dict(email, smtp_pass=smtp_password)
    return joined


def write_private(path, text):
    """Writes beside the target and renames: a process starting at the same time never reads half a file."""
    temporary = "%s.%d" % (path, os.getpid())
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        os.fchmod(stream.fileno(), 0o600)
        stream.write(text)
    os.replace(temporary, path)


def environment(jemalloc=JEMALLOC):
    """The process environment, with jemalloc preloaded when asked for, there, and LD_PRELOAD is not set."""
    env = dict(os.environ)
    wanted = env.pop("MXSTACK_SYNAPSE_JEMALLOC", "") == "1"
    if wanted and "LD_PRELOAD" not in env and os.path.isfile(jemalloc):
        env["LD_PRELOAD"] = jemalloc
    return env


def main(argv):
    if len(argv) < 4:
        sys.exit("usage: synapse-start.py SECRETS_DIR JOINED_FILE -m synapse.app.<app> --config-path FILE ...")
    secrets_dir, joined_file, command = argv[1], argv[2], argv[3:]
    os.umask(0o077)
    joined = joined_blocks(read_blocks(config_paths(command)), secrets_dir)
    write_private(joined_file, yaml.safe_dump(joined, default_flow_style=False))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *command, "--config-path", joined_file], environment())


if __name__ == "__main__":
    main(sys.argv)
`;

/**
 * The environment every Synapse process gets from its target: with synapse.jemalloc, the start step's
 * signal to preload jemalloc (it takes the variable out before starting Synapse).
 */
export function synapseProcessEnvironment(stack: Stack): Record<string, string> {
  return stack.values.synapse.jemalloc ? { MXSTACK_SYNAPSE_JEMALLOC: '1' } : {};
}

/** The same as a Kubernetes container's env (nothing by default). */
export function synapseContainerEnvironment(stack: Stack): { env?: Array<{ name: string; value: string }> } {
  const environment = Object.entries(synapseProcessEnvironment(stack));
  return environment.length > 0 ? { env: environment.map(([name, value]) => ({ name, value })) } : {};
}

/**
 * The argv of a Synapse process started through the script: `python` is the target's interpreter,
 * `app` the Synapse application module (synapse.app.homeserver, synapse.app.generic_worker ...),
 * `configPaths` its config files, homeserver.yaml first. The joined file is appended as the last one.
 */
export function synapseStartArgv(stack: Stack, python: string, app: string, configPaths: readonly string[]): string[] {
  const { paths } = stack.placement;
  return [
    python,
    posix.join(paths.synapseConfigDir, synapseStartScriptFile),
    paths.synapseSecretsDir,
    synapseJoinedConfigPath(stack),
    '-m',
    app,
    ...configPaths.flatMap((path) => ['--config-path', path]),
  ];
}

/** Where the joined file lives (read by `secrets verify`). */
export function synapseJoinedConfigPath(stack: Stack): string {
  return posix.join(stack.placement.paths.synapseRuntimeDir, synapseJoinedConfigFile);
}

/** homeserver.yaml, the first config file of every Synapse process. */
export function homeserverConfigPath(stack: Stack): string {
  return posix.join(stack.placement.paths.synapseConfigDir, 'homeserver.yaml');
}
