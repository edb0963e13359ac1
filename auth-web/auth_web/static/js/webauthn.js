/* WebAuthn for faceauth: the server's options JSON (base64url binary fields) → navigator.credentials, and the
 * credential back to JSON for the server (the shape of PublicKeyCredential.toJSON()). No dependencies. */
(function () {
  "use strict";

  function fromBase64url(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return Object.assign({}, item, { id: fromBase64url(item.id) });
    });
  }

  /* The credential's common fields as JSON around its ceremony-specific ``response`` fields. */
  function credentialJSON(credential, response) {
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: response
    };
  }

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials && window.isSecureContext);
  }

  /* navigator.credentials.create() from the server's creation options; resolves to the credential's JSON. */
  function create(publicKey) {
    var options = Object.assign({}, publicKey, {
      challenge: fromBase64url(publicKey.challenge),
      user: Object.assign({}, publicKey.user, { id: fromBase64url(publicKey.user.id) }),
      excludeCredentials: descriptors(publicKey.excludeCredentials)
    });
    return navigator.credentials.create({ publicKey: options }).then(function (credential) {
      var response = credential.response;
      return credentialJSON(credential, {
        clientDataJSON: toBase64url(response.clientDataJSON),
        attestationObject: toBase64url(response.attestationObject),
        transports: response.getTransports ? response.getTransports() : []
      });
    });
  }

  /* navigator.credentials.get() from the server's request options; resolves to the assertion's JSON. */
  function get(publicKey) {
    var options = Object.assign({}, publicKey, {
      challenge: fromBase64url(publicKey.challenge),
      allowCredentials: descriptors(publicKey.allowCredentials)
    });
    return navigator.credentials.get({ publicKey: options }).then(function (credential) {
      var response = credential.response;
      return credentialJSON(credential, {
        clientDataJSON: toBase64url(response.clientDataJSON),
        authenticatorData: toBase64url(response.authenticatorData),
        signature: toBase64url(response.signature),
        userHandle: response.userHandle ? toBase64url(response.userHandle) : undefined
      });
    });
  }

  /* What went wrong with the authenticator, in words a person can act on. */
  function explain(error) {
    var name = error && error.name;
    var t = window.FaceauthI18n.t;
    if (name === "NotAllowedError") { return t("webauthn.not_allowed"); }
    if (name === "InvalidStateError") { return t("webauthn.invalid_state"); }
    if (name === "SecurityError") { return t("webauthn.security"); }
    if (name === "NotSupportedError") { return t("webauthn.not_supported"); }
    return t("webauthn.failed");
  }

  window.FaceauthWebAuthn = { supported: supported, create: create, get: get, explain: explain };
})();
