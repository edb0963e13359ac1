/* Admin pages: confirm destructive actions (no inline handlers: the CSP forbids them). */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.classList && form.classList.contains("js-confirm")) {
      if (!window.confirm(form.dataset.confirm || window.FaceauthI18n.t("admin.confirm"))) { event.preventDefault(); }
    }
  });
})();
