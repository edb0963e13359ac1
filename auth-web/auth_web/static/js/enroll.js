/* Enrollment page: challenge → capture → /api/enroll. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("enroll-form");
    if (!form || !window.FaceauthCapture) { return; }
    window.FaceauthCapture.bindCaptureForm(form, {});
  });
})();
