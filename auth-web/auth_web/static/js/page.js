/* Enhancements of every page (loaded by base.html; no inline script, so the strict CSP stays as it is).
 *
 * 1. Times: the server writes <time datetime="…Z" data-precision="date|minute|second" title="… UTC">… UTC</time>
 *    (the `local_time` Jinja filter); here the text becomes the same moment in the browser's own time zone and
 *    language, the tooltip keeps UTC. Without JavaScript the UTC text stays.
 * 2. Tables: on narrow screens app.css shows each row of a .table as a card whose cells are led by their column's
 *    name; that name is copied here from the table's header into data-label, so no template repeats it.
 * 3. Words: window.FaceauthI18n.t(key, params) gives the page scripts their strings in the page's language, from the
 *    <script type="application/json" id="i18n"> block base.html renders (auth_web/js_strings.py; data, not code).
 *    base.html loads this script first, so the other scripts may use it as they load.
 */
(function () {
  "use strict";

  var strings = null;
  var numberFormat = null;

  function catalogue() {
    if (strings === null) {
      var block = document.getElementById("i18n");
      try {
        strings = block ? JSON.parse(block.textContent) : {};
      } catch (error) {
        strings = {};
      }
    }
    return strings;
  }

  function formatValue(value) {
    if (typeof value !== "number") { return String(value); }
    try {
      numberFormat = numberFormat || new Intl.NumberFormat(document.documentElement.lang || undefined, { useGrouping: false });
      return numberFormat.format(value);
    } catch (error) {
      return String(value);
    }
  }

  /* The string of key in the page's language, its {name} placeholders filled from params. A missing key is shown as
   * itself (tests/unit/test_translations.py keeps every key the scripts use in the catalogue). */
  function t(key, params) {
    var text = catalogue()[key];
    if (typeof text !== "string") { return key; }
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return params && Object.prototype.hasOwnProperty.call(params, name) ? formatValue(params[name]) : whole;
    });
  }

  window.FaceauthI18n = { t: t };

  var FORMATS = {
    date: { year: "numeric", month: "short", day: "numeric" },
    minute: { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" },
    second: {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
      timeZoneName: "short",
    },
  };

  function localTimes(root) {
    var formatters = {};
    root.querySelectorAll("time[data-precision][datetime]").forEach(function (element) {
      var precision = FORMATS[element.dataset.precision] ? element.dataset.precision : "minute";
      var moment = new Date(element.getAttribute("datetime"));
      if (isNaN(moment.getTime())) { return; }
      try {
        formatters[precision] = formatters[precision] || new Intl.DateTimeFormat(undefined, FORMATS[precision]);
        element.textContent = formatters[precision].format(moment);
        element.dataset.localised = "true";
      } catch (error) {
        // An engine without Intl keeps the server's UTC text.
      }
    });
  }

  function headerLabels(table) {
    var labels = [];
    var head = table.tHead && table.tHead.rows[0];
    if (!head) { return labels; }
    Array.prototype.forEach.call(head.cells, function (cell) {
      // A column whose header is only for screen readers (an actions column) gets no visible label.
      var visible = cell.querySelector(".visually-hidden") ? "" : cell.textContent.trim();
      for (var span = 0; span < (cell.colSpan || 1); span += 1) { labels.push(visible); }
    });
    return labels;
  }

  function tableLabels(root) {
    root.querySelectorAll("table.table").forEach(function (table) {
      var labels = headerLabels(table);
      Array.prototype.forEach.call(table.tBodies, function (body) {
        Array.prototype.forEach.call(body.rows, function (row) {
          var column = 0;
          Array.prototype.forEach.call(row.cells, function (cell) {
            var label = labels[column];
            if (cell.colSpan === 1 && label && !cell.hasAttribute("data-label")) { cell.setAttribute("data-label", label); }
            column += cell.colSpan || 1;
          });
        });
      });
    });
  }

  function enhance() {
    localTimes(document);
    tableLabels(document);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", enhance);
  } else {
    enhance();
  }
})();
