/* Sign-in page: username (+ password) → challenge → capture → /api/login. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("login-form");
    if (!form || !window.FaceauthCapture) { return; }
    var username = form.querySelector("#username");
    var password = form.querySelector("#password");
    window.FaceauthCapture.bindCaptureForm(form, {
      validate: function () {
        if (!username.value.trim()) { return { message: "Enter your username.", field: username }; }
        if (password && !password.value) { return { message: "Enter your password.", field: password }; }
        return null;
      },
      challengePayload: function () { return { username: username.value.trim() }; },
      extraFields: function () { return password ? { password: password.value } : {}; }
    });
  });
})();
