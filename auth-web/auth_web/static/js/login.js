/* Sign-in page: the flow's steps (AUTH_FACTORS). The first factor — password (/api/login/password) or passkey
 * (/api/login/passkey) — is checked before the camera starts; then challenge → capture → /api/login. After a failed
 * face check the server may offer the passkey instead (/api/login/fallback). */
(function () {
  "use strict";
  var t = window.FaceauthI18n.t;
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("login-form");
    if (!form || !window.FaceauthCapture) { return; }
    var username = form.querySelector("#username");
    var password = form.querySelector("#password");
    var factors = form.dataset.factors || "password+face";
    var post = window.FaceauthCapture.postJSON;
    var webauthn = window.FaceauthWebAuthn;
    var fallback = document.getElementById("fallback");
    var fallbackButton = document.getElementById("fallback-button");
    var fallbackStatus = document.getElementById("fallback-status");

    /* navigator.credentials.get() for the options at optionsUrl, posted to checkUrl; resolves to the server's
     * answer ({ok, message, ...}) whatever happened, so the page can show it. */
    function assertPasskey(optionsUrl, optionsBody, checkUrl) {
      if (!webauthn || !webauthn.supported()) {
        return Promise.resolve({ ok: false, message: t("passkey.unsupported_here") });
      }
      return post(optionsUrl, optionsBody).then(function (options) {
        if (!options.ok) { return options; }
        return webauthn.get(options.publicKey).then(function (credential) {
          return post(checkUrl, { credential: credential });
        }, function (error) {
          return { ok: false, message: webauthn.explain(error) };
        });
      });
    }

    var firstFactor = null;
    if (factors === "password+face") {
      firstFactor = function () {
        return post(form.dataset.passwordUrl, { username: username.value.trim(), password: password.value });
      };
    } else if (factors === "passkey+face") {
      firstFactor = function () {
        return assertPasskey(form.dataset.passkeyOptionsUrl, { username: username.value.trim() }, form.dataset.passkeyUrl);
      };
    }

    function hideFallback() {
      if (fallback) { fallback.hidden = true; }
    }

    window.FaceauthCapture.bindCaptureForm(form, {
      validate: function () {
        hideFallback();
        if (!username.value.trim()) { return { message: t("login.enter_username"), field: username }; }
        if (password && !password.value) { return { message: t("login.enter_password"), field: password }; }
        return null;
      },
      beforeCamera: firstFactor,
      // After the first factor, the challenge is for that account: the username is the one it was checked for.
      challengePayload: function () { return { username: username.value.trim() }; },
      onFailure: function (result) {
        if (fallback && result && result.fallback === "passkey") {
          fallback.hidden = false;
          fallbackButton.focus();
        }
      }
    });

    if (fallbackButton) {
      fallbackButton.addEventListener("click", function () {
        fallbackButton.disabled = true;
        fallbackStatus.textContent = t("passkey.follow_prompt_use");
        fallbackStatus.className = "capture__status";
        assertPasskey(form.dataset.fallbackOptionsUrl, {}, form.dataset.fallbackUrl).then(function (result) {
          if (result.ok) {
            fallbackStatus.textContent = result.message || t("login.signed_in");
            fallbackStatus.className = "capture__status capture__status--ok";
            window.location.assign(form.dataset.next || result.redirect || form.dataset.successUrl);
            return;
          }
          fallbackStatus.textContent = result.message;
          fallbackStatus.className = "capture__status capture__status--error";
          fallbackButton.disabled = false;
        }, function () {
          fallbackStatus.textContent = t("network_failed");
          fallbackStatus.className = "capture__status capture__status--error";
          fallbackButton.disabled = false;
        });
      });
    }
  });
})();
