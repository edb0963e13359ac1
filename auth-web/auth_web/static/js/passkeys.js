/* Account page: add a passkey (options → navigator.credentials.create → /api/passkeys). */
(function () {
  "use strict";
  var t = window.FaceauthI18n.t;
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("passkey-add-form");
    if (!form || !window.FaceauthWebAuthn || !window.FaceauthCapture) { return; }
    var status = document.getElementById("passkey-status");
    var button = form.querySelector("button[type=submit]");
    var name = form.querySelector("#passkey-name");
    var post = window.FaceauthCapture.postJSON;

    function say(text, kind) {
      status.textContent = text;
      status.className = "capture__status" + (kind ? " capture__status--" + kind : "");
    }

    if (!window.FaceauthWebAuthn.supported()) {
      button.disabled = true;
      say(t("passkey.cannot_create"), "error");
      return;
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      say(t("passkey.follow_prompt_create"));
      post(form.dataset.optionsUrl, {}).then(function (options) {
        if (!options.ok) { throw { shown: true, body: options }; }
        return window.FaceauthWebAuthn.create(options.publicKey).catch(function (error) {
          throw { shown: true, body: { message: window.FaceauthWebAuthn.explain(error) } };
        });
      }).then(function (credential) {
        return post(form.dataset.registerUrl, { credential: credential, name: name.value.trim() });
      }).then(function (result) {
        if (!result.ok) { throw { shown: true, body: result }; }
        say(result.message, "ok");
        window.location.assign(form.dataset.successUrl);
      }).catch(function (error) {
        var body = (error && error.body) || {};
        if (body.error === "reauth_required" && body.reauth_url) {
          window.location.assign(body.reauth_url);
          return;
        }
        say(body.message || t("network_failed"), "error");
        button.disabled = false;
      });
    });
  });
})();
