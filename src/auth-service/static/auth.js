// WebAuthn ceremonies of the mxstack auth pages (no inline scripts: the page's CSP forbids them).
// Buttons with data-webauthn="register" | "authenticate" fetch options (JSON) from data-options, call
// navigator.credentials, and post the result to data-verify; the answer says where to go next.
/* global atob, btoa, document, navigator, window */
'use strict';

function fromBase64url(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return bytes.buffer;
}

function toBase64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').getAttribute('content');
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken() },
    body: JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(json.error || 'The security key could not be used.');
  return json;
}

function creationOptions(options) {
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    user: { ...options.user, id: fromBase64url(options.user.id) },
    excludeCredentials: (options.excludeCredentials || []).map((c) => ({ ...c, id: fromBase64url(c.id) })),
  };
}

function requestOptions(options) {
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    allowCredentials: (options.allowCredentials || []).map((c) => ({ ...c, id: fromBase64url(c.id) })),
  };
}

/** The JSON form @simplewebauthn/server verifies: the shared fields plus the ceremony's own `response` fields. */
function credentialJson(credential, response) {
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    clientExtensionResults: credential.getClientExtensionResults(),
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    response: { clientDataJSON: toBase64url(credential.response.clientDataJSON), ...response },
  };
}

function registrationJson(credential) {
  return credentialJson(credential, {
    attestationObject: toBase64url(credential.response.attestationObject),
    transports: credential.response.getTransports ? credential.response.getTransports() : [],
  });
}

function authenticationJson(credential) {
  return credentialJson(credential, {
    authenticatorData: toBase64url(credential.response.authenticatorData),
    signature: toBase64url(credential.response.signature),
    userHandle: credential.response.userHandle ? toBase64url(credential.response.userHandle) : undefined,
  });
}

function showError(message) {
  const region = document.getElementById('error');
  if (region) region.textContent = message;
}

async function runCeremony(button) {
  const kind = button.dataset.webauthn;
  button.disabled = true;
  showError('');
  try {
    const nameInput = document.getElementById('security-key-name');
    const name = nameInput ? nameInput.value : '';
    const options = await postJson(button.dataset.options, {});
    let body;
    if (kind === 'register') {
      const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
      body = { response: registrationJson(credential), name };
    } else {
      const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
      body = { response: authenticationJson(credential) };
    }
    const result = await postJson(button.dataset.verify, body);
    window.location.assign(result.redirect);
  } catch (error) {
    showError(error && error.name === 'NotAllowedError' ? 'The security key was not used (cancelled or timed out).' : String(error.message || error));
    button.disabled = false;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  for (const button of document.querySelectorAll('[data-webauthn]')) {
    button.addEventListener('click', () => void runCeremony(button));
  }
});
