"""Register the administrator through Synapse's shared-secret registration API, once.

Idempotent: a user that already exists counts as success, and is left as it is.
The password and the shared secret are read from files, never from the environment or the
command line, and never printed. Settings that are not secret come from the environment:

  MXSTACK_SYNAPSE_URL               base URL of the Synapse client API (no trailing slash needed)
  MXSTACK_ADMIN_USERNAME            localpart of the user
  MXSTACK_ADMIN_IS_ADMIN            "true" or "false": grant server admin rights
  MXSTACK_ADMIN_DISPLAYNAME         optional display name
  MXSTACK_ADMIN_EMAIL               optional email address (set through the admin API when admin)
  MXSTACK_ADMIN_PASSWORD_FILE       file holding the password
  MXSTACK_REGISTRATION_SECRET_FILE  file holding registration_shared_secret
  MXSTACK_WAIT_SECONDS              how long to wait for Synapse to answer /health (default 600)

Only the Python standard library is used: it runs with the Synapse image's own interpreter.
"""

import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def setting(name, default=None):
    value = os.environ.get(name, default)
    if value is None or value == "":
        if default is not None:
            return default
        raise SystemExit(f"register-admin: {name} is not set")
    return value


def read_secret_file(path):
    # Synapse strips trailing whitespace from its *_path files; do the same so both agree.
    with open(path, encoding="utf-8") as handle:
        return handle.read().rstrip()


def call(method, url, body=None, token=None, timeout=10):
    """One JSON request; returns (status, decoded body) for success and HTTP errors alike."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, decode(error.read())


def decode(raw):
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def wait_until_healthy(base_url, wait_seconds):
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() >= deadline:
            raise SystemExit(f"register-admin: Synapse did not answer {base_url}/health within {wait_seconds} s")
        time.sleep(3)


def registration_mac(shared_secret, nonce, username, password, admin):
    """hex(HMAC-SHA1(secret, nonce NUL username NUL password NUL admin|notadmin)), as Synapse checks it."""
    mac = hmac.new(shared_secret.encode("utf-8"), digestmod=hashlib.sha1)
    parts = [nonce, username, password, "admin" if admin else "notadmin"]
    mac.update(b"\x00".join(part.encode("utf-8") for part in parts))
    return mac.hexdigest()


def set_email(base_url, user_id, email, token):
    url = f"{base_url}/_synapse/admin/v2/users/{urllib.parse.quote(user_id)}"
    status, body = call("PUT", url, {"threepids": [{"medium": "email", "address": email}]}, token=token)
    if status not in (200, 201):
        print(f"register-admin: could not set the email address: HTTP {status} {body.get('errcode', '')}", file=sys.stderr)
        return False
    print(f"register-admin: email address of {user_id} set")
    return True


def main():
    base_url = setting("MXSTACK_SYNAPSE_URL").rstrip("/")
    username = setting("MXSTACK_ADMIN_USERNAME")
    admin = setting("MXSTACK_ADMIN_IS_ADMIN", "true").lower() == "true"
    displayname = os.environ.get("MXSTACK_ADMIN_DISPLAYNAME", "")
    email = os.environ.get("MXSTACK_ADMIN_EMAIL", "")
    password = read_secret_file(setting("MXSTACK_ADMIN_PASSWORD_FILE"))
    shared_secret = read_secret_file(setting("MXSTACK_REGISTRATION_SECRET_FILE"))
    if not password or not shared_secret:
        raise SystemExit("register-admin: the password file or the registration secret file is empty")

    wait_until_healthy(base_url, int(setting("MXSTACK_WAIT_SECONDS", "600")))

    register_url = f"{base_url}/_synapse/admin/v1/register"
    status, body = call("GET", register_url)
    if status != 200 or "nonce" not in body:
        raise SystemExit(f"register-admin: no registration nonce: HTTP {status} {body.get('errcode', '')} {body.get('error', '')}")
    payload = {
        "nonce": body["nonce"],
        "username": username,
        "password": password,
        "admin": admin,
        "mac": registration_mac(shared_secret, body["nonce"], username, password, admin),
    }
    if displayname:
        payload["displayname"] = displayname
    status, body = call("POST", register_url, payload)

    if status == 400 and body.get("errcode") == "M_USER_IN_USE":
        print(f"register-admin: user {username} already exists; nothing to do")
        return 0
    if status != 200:
        print(f"register-admin: registration failed: HTTP {status} {body.get('errcode', '')} {body.get('error', '')}", file=sys.stderr)
        return 1
    user_id = body.get("user_id", username)
    print(f"register-admin: registered {user_id}{' as server admin' if admin else ''}")
    if email:
        if admin and body.get("access_token"):
            if not set_email(base_url, user_id, email, body["access_token"]):
                return 1
        else:
            print("register-admin: email not set: only a server admin may set it through the admin API", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
