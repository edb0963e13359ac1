/* faceauth live framing guidance (issue 16): a small face detector in the page — face-api 1.7.15's tiny face
 * detector, vendored under static/vendor with its model, no CDN — tells the person, several times a second, whether
 * the face is found, too far, too close, off-centre, in the dark or not alone, and says when it is well placed.
 * Nothing leaves the page: the preview frames are judged here and thrown away (bench/results/guidance.md: why not a
 * preview endpoint). Without the detector (the script did not load, a very old browser) the guide says so and the
 * capture starts after a short fixed lead instead. */
(function () {
  "use strict";

  // The detector's working picture: small is fast, and the tiny detector still finds a face filling a tenth of it.
  var WORK_WIDTH = 160, WORK_HEIGHT = 120;
  var INPUT_SIZE = 128;           // the tiny face detector's input (a multiple of 32)
  var SCORE_THRESHOLD = 0.5;
  var MIN_INTERVAL_MS = 100;      // at most 10 updates a second: the rest of the CPU is the page's
  var QUICK_DETECTION_MS = 60;    // a judgement this quick may run beside the capture's frames (WASM: ~12 ms)
  // Placement, in fractions of the (unmirrored) camera picture; the oval is drawn by capture.js at x 0.5, y 0.47.
  var OVAL_X = 0.5, OVAL_Y = 0.47;
  var MIN_FACE_WIDTH = 0.5, MAX_FACE_WIDTH = 0.8, MAX_OFFSET_X = 0.12, MAX_OFFSET_Y = 0.14;
  var MIN_BRIGHTNESS = 60;        // mean luma (0-255) of the face box; the liveness checks need a lit face
  var SECOND_FACE_RATIO = 0.25;   // a second face smaller than this share of the first is ignored (as liveness does)

  // In the page's language (page.js runs first: see base.html).
  var t = window.FaceauthI18n.t;
  var HINTS = {
    loading: t("guide.loading"),
    none: t("guide.none"),
    many: t("guide.many"),
    dark: t("guide.dark"),
    far: t("guide.far"),
    near: t("guide.near"),
    offcentre: t("guide.offcentre"),
    placed: t("guide.placed"),
    unavailable: t("guide.unavailable")
  };

  /* What to tell the person about one picture: faces [{x, y, width, height, score}] in fractions of the picture,
   * brightness(box) the mean luma of a box. Pure, so that its rules can be read (and tried) apart from the camera. */
  function judge(faces, brightness) {
    if (!faces.length) {
      return brightness(null) < MIN_BRIGHTNESS / 2 ? "dark" : "none";
    }
    var sorted = faces.slice().sort(function (a, b) { return b.width * b.height - a.width * a.height; });
    var face = sorted[0];
    var others = sorted.slice(1).filter(function (f) {
      return f.width * f.height >= SECOND_FACE_RATIO * face.width * face.height;
    });
    if (others.length) { return "many"; }
    if (brightness(face) < MIN_BRIGHTNESS) { return "dark"; }
    if (face.width < MIN_FACE_WIDTH) { return "far"; }
    if (face.width > MAX_FACE_WIDTH) { return "near"; }
    // The tiny detector's box reaches below the chin: its upper 40 % is where the oval's centre should be.
    var dx = face.x + face.width / 2 - OVAL_X, dy = face.y + face.height * 0.4 - OVAL_Y;
    if (Math.abs(dx) > MAX_OFFSET_X || Math.abs(dy) > MAX_OFFSET_Y) { return "offcentre"; }
    return "placed";
  }

  /* The detector, loaded once per page (model files from our own static folder), on the first call. tfjs's WASM
   * backend first: on this detector it is by far the fastest where there is no GPU (headless Chromium on a 2-core
   * machine: bench/results/guidance.md), and it needs only the CSP's 'wasm-unsafe-eval'. Its binaries
   * come from static/vendor/tfjs-backend-wasm@4.22.0 (the tfjs version face-api bundles); tfjs picks the SIMD one
   * where the browser has SIMD. The threaded build is not served: it needs SharedArrayBuffer, which a page gets only
   * when cross-origin isolated (COOP + COEP), and tfjs does not ask for it otherwise. Where WASM does not start (no
   * WebAssembly, a binary not found), the earlier choice: WebGL, or the plain CPU backend when WebGL is a software
   * renderer (SwiftShader, llvmpipe: slower than the CPU backend and seconds to compile its shaders). */
  var detectorReady = null;
  function softwareWebGL() {
    try {
      var gl = document.createElement("canvas").getContext("webgl");
      if (!gl) { return true; }
      var info = gl.getExtension("WEBGL_debug_renderer_info");
      var renderer = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
      return /swiftshader|llvmpipe|software/i.test(renderer);
    } catch (error) {
      return true;
    }
  }
  function chooseBackend(tf, wasmUrl) {
    var fallback = softwareWebGL() ? "cpu" : "webgl";
    if (!wasmUrl || typeof WebAssembly !== "object" || typeof tf.setWasmPaths !== "function") {
      return tf.setBackend(fallback);
    }
    tf.setWasmPaths(wasmUrl);
    // setBackend resolves false (and logs a warning) when the backend fails to initialise.
    return tf.setBackend("wasm").then(function (ok) {
      return ok ? ok : tf.setBackend(fallback);
    }, function () {
      return tf.setBackend(fallback);
    });
  }
  function loadDetector(modelUrl, wasmUrl) {
    if (detectorReady) { return detectorReady; }
    var api = window.faceapi;
    if (!api || !modelUrl) {
      detectorReady = Promise.reject(new Error("no face detector on this page"));
      detectorReady.catch(function () {});
      return detectorReady;
    }
    detectorReady = chooseBackend(api.tf, wasmUrl).then(function () {
      return api.tf.ready();
    }).then(function () {
      return api.nets.tinyFaceDetector.loadFromUri(modelUrl);
    }).then(function () {
      // The first inference builds the kernels (hundreds of ms): do it now, on a blank picture, not on the camera's.
      var blank = document.createElement("canvas");
      blank.width = WORK_WIDTH;
      blank.height = WORK_HEIGHT;
      blank.getContext("2d").fillRect(0, 0, WORK_WIDTH, WORK_HEIGHT);
      return api.detectAllFaces(blank, detectorOptions());
    }).then(function () { return api.tf.getBackend(); });
    detectorReady.catch(function () {});
    return detectorReady;
  }
  function detectorOptions() {
    return new window.faceapi.TinyFaceDetectorOptions({ inputSize: INPUT_SIZE, scoreThreshold: SCORE_THRESHOLD });
  }

  /* The guide of one capture widget: start() runs the detection loop on the live video, each judgement goes to
   * onUpdate(state); the hint line (aria-live, polite) changes only when the advice does. */
  function Guide(root, video, hintEl, onUpdate) {
    this.root = root;
    this.video = video;
    this.hintEl = hintEl;
    this.onUpdate = onUpdate;
    this.modelUrl = root.dataset.detectorModel || "";
    this.wasmUrl = root.dataset.detectorWasm || "";
    this.canvas = document.createElement("canvas");
    this.canvas.width = WORK_WIDTH;
    this.canvas.height = WORK_HEIGHT;
    this.running = false;
    this.state = null;
    this.placedSince = null;
    // What the tests and the timing read: how many judgements, when the last one ended, their rate since the start
    // (judgements per second, the guide's own clock), and each change of advice with its time.
    this.stats = {
      updates: 0, startedAt: null, lastAt: null, perSecond: null, changes: [], backend: null, available: null,
      lastDetectionMs: null, stoppedAt: null
    };
    window.__faceauthGuidance = this.stats;
  }

  Guide.prototype.preload = function () {
    var stats = this.stats;
    return loadDetector(this.modelUrl, this.wasmUrl).then(function (backend) {
      stats.backend = backend;
      stats.available = true;
    }, function () {
      stats.available = false;
    });
  };

  Guide.prototype.setHint = function (state) {
    if (state === this.state) { return; }
    this.state = state;
    this.root.dataset.guidance = state;
    this.stats.changes.push({ state: state, at: Math.round(performance.now()), faces: this.stats.lastFaces || [] });
    // Announced only on change: a steady "Good, hold still." is not read out again and again.
    this.hintEl.textContent = HINTS[state] || "";
    this.hintEl.className = "capture__hint capture__hint--" + state;
    this.hintEl.hidden = !HINTS[state];
  };

  /* Mean luma of a box of the working picture (the whole picture for null), from every other pixel. */
  Guide.prototype.brightness = function (pixels, box) {
    var x0 = 0, y0 = 0, x1 = WORK_WIDTH, y1 = WORK_HEIGHT;
    if (box) {
      x0 = Math.max(0, Math.floor(box.x * WORK_WIDTH));
      y0 = Math.max(0, Math.floor(box.y * WORK_HEIGHT));
      x1 = Math.min(WORK_WIDTH, Math.ceil((box.x + box.width) * WORK_WIDTH));
      y1 = Math.min(WORK_HEIGHT, Math.ceil((box.y + box.height) * WORK_HEIGHT));
    }
    var sum = 0, count = 0;
    for (var y = y0; y < y1; y += 2) {
      for (var x = x0; x < x1; x += 2) {
        var i = (y * WORK_WIDTH + x) * 4;
        sum += 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
        count += 1;
      }
    }
    return count ? sum / count : 0;
  };

  Guide.prototype.start = function () {
    var self = this;
    if (this.running) { return; }
    this.running = true;
    this.placedSince = null;
    this.state = null;
    this.stats.startedAt = Math.round(performance.now());
    this.setHint("loading");
    this.preload().then(function () {
      if (!self.running) { return; }
      if (!self.stats.available) {
        self.setHint("unavailable");
        self.onUpdate("unavailable");
        return;
      }
      self.loop();
    });
  };

  /* Resolves once no detection runs any more: the detector holds the main thread for tens to hundreds of
   * milliseconds, which would upset the capture's frame timing (LIVENESS_FRAME_TIMING) if it overlapped. */
  Guide.prototype.stop = function () {
    if (this.running) { this.stats.stoppedAt = Math.round(performance.now()); }
    this.running = false;
    return this.inflight || Promise.resolve();
  };

  Guide.prototype.loop = function () {
    var self = this;
    if (!this.running) { return; }
    var began = performance.now();
    var video = this.video;
    var ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    // The full camera picture, unmirrored, squeezed to the working size (both are 4:3).
    ctx.drawImage(video, 0, 0, WORK_WIDTH, WORK_HEIGHT);
    var pixels = ctx.getImageData(0, 0, WORK_WIDTH, WORK_HEIGHT).data;
    var detection = window.faceapi.detectAllFaces(this.canvas, detectorOptions());
    this.inflight = detection.then(function () {}, function () {});
    detection.then(function (detections) {
      if (!self.running) { return; }
      var faces = detections.map(function (detection) {
        var box = detection.box;
        return {
          x: box.x / WORK_WIDTH, y: box.y / WORK_HEIGHT,
          width: box.width / WORK_WIDTH, height: box.height / WORK_HEIGHT, score: detection.score
        };
      });
      var state = judge(faces, function (box) { return self.brightness(pixels, box); });
      self.stats.lastFaces = faces.map(function (f) {
        return [f.x, f.y, f.width, f.height].map(function (v) { return Math.round(v * 100) / 100; });
      });
      var now = performance.now();
      if (state === "placed") {
        if (self.placedSince === null) { self.placedSince = now; }
      } else {
        self.placedSince = null;
      }
      self.stats.updates += 1;
      self.stats.lastAt = Math.round(now);
      self.stats.lastDetectionMs = Math.round(now - began);
      self.stats.perSecond = now > self.stats.startedAt ?
        Math.round(self.stats.updates * 100000 / (now - self.stats.startedAt)) / 100 : null;
      self.setHint(state);
      self.onUpdate(state);
      setTimeout(function () { self.loop(); }, Math.max(0, MIN_INTERVAL_MS - (performance.now() - began)));
    }, function () {
      if (!self.running) { return; }
      setTimeout(function () { self.loop(); }, MIN_INTERVAL_MS);
    });
  };

  /* How long the face has been well placed now (0 when it is not). */
  Guide.prototype.placedFor = function () {
    return this.placedSince === null ? 0 : performance.now() - this.placedSince;
  };

  Guide.prototype.isPlaced = function () { return this.running && this.placedSince !== null; };

  /* Whether the last judgement was quick enough to go on judging while the capture films: a slow one (the CPU
   * backend: ~300 ms) would hold up the frames (LIVENESS_FRAME_TIMING). */
  Guide.prototype.isQuick = function () {
    return this.stats.lastDetectionMs !== null && this.stats.lastDetectionMs <= QUICK_DETECTION_MS;
  };

  window.FaceauthGuidance = { Guide: Guide, judge: judge, HINTS: HINTS, loadDetector: loadDetector };
})();
