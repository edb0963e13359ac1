/* Admin: screen-flash calibration. Runs one capture with the flash (capture.js), posts it to the calibration check
 * and draws what the liveness service measured: the painted colour sequence over time, above the skin's colour
 * response (skin minus background log-chroma per channel), with the decision. Plain SVG built here; no library,
 * nothing inline (the CSP forbids it). */
(function () {
  "use strict";

  var t = window.FaceauthI18n.t;
  var SVG = "http://www.w3.org/2000/svg";
  var WIDTH = 720, HEIGHT = 320;
  var LEFT = 56, RIGHT = 14;
  var BANDS = { top: 8, height: 26 };       // the colour sequence as painted
  var EXPECTED = { top: 40, height: 12 };   // the colour expected to light each frame (after the estimated lag)
  var CHART = { top: 66, bottom: 282 };     // the measured response
  var CHANNELS = ["r", "g", "b"];

  function svg(name, attributes, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attributes || {}).forEach(function (key) { node.setAttribute(key, String(attributes[key])); });
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function text(parent, x, y, content, anchor) {
    var node = svg("text", { x: x, y: y, "class": "flash-plot__label", "text-anchor": anchor || "start" }, parent);
    node.textContent = content;
    return node;
  }

  function isColour(value) {
    return typeof value === "string" && /^#[0-9a-fA-F]{6}$/.test(value);
  }

  function isTriple(value) {
    return Array.isArray(value) && value.length === 3 && value.every(function (v) { return typeof v === "number"; });
  }

  /* Log-chroma: the log of each channel minus the mean of the three logs (brightness changes cancel out), as the
   * liveness check measures it. */
  function logChroma(rgb) {
    var logs = rgb.map(function (v) { return Math.log(Math.max(v, 1e-4)); });
    var mean = (logs[0] + logs[1] + logs[2]) / 3;
    return logs.map(function (v) { return v - mean; });
  }

  function fixed(value, digits) {
    return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "—";
  }

  /* The measured series: per frame with skin and background, skin minus background log-chroma, centred per channel
   * (the skin's own tone is a constant offset; what matters is how it moves with the screen). */
  function responseSeries(frames) {
    var points = frames.filter(function (f) { return isTriple(f.skin) && isTriple(f.background); }).map(function (f) {
      var skin = logChroma(f.skin), background = logChroma(f.background);
      return { t: f.time_ms, v: [skin[0] - background[0], skin[1] - background[1], skin[2] - background[2]] };
    });
    if (!points.length) { return points; }
    var means = [0, 1, 2].map(function (c) {
      return points.reduce(function (sum, p) { return sum + p.v[c]; }, 0) / points.length;
    });
    points.forEach(function (p) { p.v = p.v.map(function (v, c) { return v - means[c]; }); });
    return points;
  }

  /* Draws the plot into container (replacing what was there); returns a one-sentence summary for screen readers. */
  function drawPlot(container, result) {
    var frames = Array.isArray(result.frames) ? result.frames : [];
    var steps = Array.isArray(result.steps) ? result.steps.filter(function (s) { return isColour(s.colour); }) : [];
    var start = typeof result.flash_start_ms === "number" ? result.flash_start_ms : 0;
    var end = steps.reduce(function (t, s) { return t + s.duration_ms; }, start);
    var times = frames.map(function (f) { return f.time_ms; }).filter(function (t) { return typeof t === "number"; });
    var t0 = Math.min.apply(null, [start, 0].concat(times));
    var t1 = Math.max.apply(null, [end, t0 + 100].concat(times));
    var span = t1 - t0;
    var interval = times.length > 1 ? (times[times.length - 1] - times[0]) / (times.length - 1) : 100;
    function x(t) { return LEFT + (t - t0) / span * (WIDTH - LEFT - RIGHT); }

    container.textContent = "";
    var root = svg("svg", { viewBox: "0 0 " + WIDTH + " " + HEIGHT, role: "img", "aria-labelledby": "flash-plot-title" });
    var title = svg("title", { id: "flash-plot-title" }, root);
    container.appendChild(root);

    // The sequence as painted: one band per step, its colour, from the first paint on.
    text(root, LEFT - 6, BANDS.top + 17, t("calibration.screen"), "end");
    var at = start;
    steps.forEach(function (step) {
      svg("rect", {
        x: x(at), y: BANDS.top, width: Math.max(1, x(at + step.duration_ms) - x(at)), height: BANDS.height,
        fill: step.colour, "class": "flash-plot__band", "data-colour": step.colour
      }, root);
      at += step.duration_ms;
    });
    // What each frame was expected to show (the service's estimate, after the lag).
    text(root, LEFT - 6, EXPECTED.top + 10, t("calibration.expected"), "end");
    frames.forEach(function (f) {
      if (!isColour(f.expected)) { return; }
      svg("rect", {
        x: x(f.time_ms - interval / 2), y: EXPECTED.top, width: Math.max(1, x(interval) - x(0) - 1),
        height: EXPECTED.height, fill: f.expected, "class": "flash-plot__band"
      }, root);
    });

    // The response: three lines around zero, on a symmetric scale.
    var points = responseSeries(frames);
    var peak = points.reduce(function (m, p) {
      return Math.max(m, Math.abs(p.v[0]), Math.abs(p.v[1]), Math.abs(p.v[2]));
    }, 0.01);
    var middle = (CHART.top + CHART.bottom) / 2, half = (CHART.bottom - CHART.top) / 2;
    function y(v) { return middle - v / peak * half; }
    svg("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: middle, y2: middle, "class": "flash-plot__grid" }, root);
    svg("line", { x1: LEFT, x2: LEFT, y1: CHART.top, y2: CHART.bottom, "class": "flash-plot__axis" }, root);
    svg("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: CHART.bottom, y2: CHART.bottom, "class": "flash-plot__axis" }, root);
    text(root, LEFT - 6, CHART.top + 10, "+" + peak.toFixed(3), "end");
    text(root, LEFT - 6, middle + 4, "0", "end");
    text(root, LEFT - 6, CHART.bottom, "−" + peak.toFixed(3), "end");
    for (var tick = Math.ceil(t0 / 500) * 500; tick <= t1; tick += 500) {
      svg("line", { x1: x(tick), x2: x(tick), y1: CHART.top, y2: CHART.bottom, "class": "flash-plot__grid" }, root);
      text(root, x(tick), CHART.bottom + 16, t("calibration.seconds", { seconds: (tick / 1000).toFixed(1) }), "middle");
    }
    // Every frame on the time axis: filled where the service measured the face, hollow where it could not.
    frames.forEach(function (f) {
      var measured = isTriple(f.skin) && isTriple(f.background);
      svg("circle", {
        cx: x(f.time_ms), cy: CHART.bottom, r: 3, "class": "flash-plot__frame",
        "fill-opacity": measured ? 1 : 0, stroke: "#0f172a", "stroke-width": 1
      }, root);
    });
    CHANNELS.forEach(function (channel, c) {
      if (points.length < 2) { return; }
      var path = points.map(function (p, i) {
        return (i ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.v[c]).toFixed(1);
      }).join(" ");
      svg("path", { d: path, "class": "flash-plot__line flash-plot__line--" + channel }, root);
    });

    var summary = t("calibration.summary", {
      steps: steps.length, ms: Math.round(end - start), measured: points.length, frames: frames.length
    });
    title.textContent = t("calibration.plot_title", { summary: summary });
    return summary;
  }

  function setFact(name, value) {
    var node = document.querySelector('[data-fact="' + name + '"]');
    if (node) { node.textContent = value; }
  }

  function showResult(result) {
    var panel = document.getElementById("flash-result");
    var empty = document.getElementById("flash-empty");
    var decision = document.getElementById("flash-decision");
    var flash = result.flash || null;
    var summary = drawPlot(document.getElementById("flash-plot"), result);
    empty.hidden = true;
    decision.hidden = false;
    panel.dataset.drawn = "true";
    var verdict = document.getElementById("flash-verdict");
    if (flash) {
      verdict.textContent = flash.reflected ? t("calibration.reflected") : t("calibration.not_reflected");
      verdict.className = "verdict verdict--" + (flash.reflected ? "ok" : "error");
      setFact("reflected", flash.reflected ? t("calibration.yes") : t("calibration.no"));
      setFact("score", t("calibration.score", { score: fixed(flash.score, 2), threshold: fixed(flash.threshold, 2) }));
      setFact("face_gain", fixed(flash.face_gain, 3));
      setFact("background_ratio", fixed(flash.background_ratio, 2));
      setFact("lag", typeof flash.lag_ms === "number" ? t("calibration.milliseconds", { ms: flash.lag_ms }) : "—");
    } else {
      verdict.textContent = t("calibration.not_run");
      verdict.className = "verdict verdict--error";
      ["reflected", "score", "face_gain", "background_ratio", "lag"].forEach(function (name) {
        setFact(name, "—");
      });
    }
    var failed = Array.isArray(result.failed_checks) && result.failed_checks.length ?
      result.failed_checks.join(", ") : t("calibration.none");
    setFact("liveness", (result.live ? t("calibration.live") : t("calibration.not_live")) +
      (result.reason ? " — " + result.reason : ""));
    setFact("failed_checks", failed);
    setFact("summary", summary);
    return flash && flash.reflected;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("flash-form");
    if (!form || !window.FaceauthCapture) { return; }
    var capture = window.FaceauthCapture.bindCaptureForm(form, {
      onResult: function (result) {
        if (!result.ok) {
          capture.status(result.message || t("calibration.failed"), "error");
          return "error";
        }
        var reflected = showResult(result);
        capture.status(
          reflected ? t("calibration.done_reflected") : t("calibration.done_not_reflected"),
          "ok"
        );
        return reflected ? "ok" : "error";
      }
    });
  });
})();
