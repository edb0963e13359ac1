/* faceauth camera capture: opens the browser webcam, draws the face oval, guides the face into it (guidance.js),
 * announces the challenge, starts by itself once the face is well placed, captures N unmirrored JPEG frames at a
 * fixed rate and posts them. */
(function () {
  "use strict";

  /* The page's words (page.js, from auth_web/js_strings.py). */
  function t(key, params) { return window.FaceauthI18n.t(key, params); }

  /* A prompt inside a sentence ("Next: blink your eyes"): its first letter in lower case, the rest as the server
   * wrote it (German keeps its nouns and "Sie" capitalised). */
  function inline(prompt) { return prompt.charAt(0).toLowerCase() + prompt.slice(1); }

  var UNAVAILABLE = t("unavailable");

  // The face must stay well placed this long before a capture is kept (no countdown). With a quick detector the
  // frames are filmed from the moment it is placed and thrown away if it leaves within this time; with a slow one
  // the capture starts after it.
  var PLACED_HOLD_MS = 500;
  // Without a face detector (guidance.js could not load one), the capture starts this long after the announcement.
  var UNGUIDED_LEAD_MS = 1500;

  /* Click-to-verdict timing (issue 16 item 3), in absolute milliseconds (performance.timeOrigin + now), kept in
   * sessionStorage so that the page reached after the redirect can be timed too (tests/e2e read it). */
  var timing = {
    marks: {},
    reset: function () { this.marks = {}; this.mark("click"); },
    mark: function (name) {
      this.marks[name] = Math.round(performance.timeOrigin + performance.now());
      window.__faceauthTiming = this.marks;
    },
    /* Before leaving for the next page: the marks and the verdict shown (the page is gone a moment later). */
    keep: function (message) {
      try {
        window.sessionStorage.setItem("faceauth.timing", JSON.stringify(this.marks));
        window.sessionStorage.setItem("faceauth.verdict", message);
        window.sessionStorage.setItem("faceauth.capture", JSON.stringify(window.__faceauthCapture || null));
      } catch (error) { /* storage off: only the timing is lost */ }
    }
  };

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* fetch wrapper: always resolves to {status, ok, message, ...body}; network errors reject. */
  function request(url, options) {
    options.headers = Object.assign({ "X-CSRFToken": csrfToken(), "Accept": "application/json" }, options.headers || {});
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try { body = JSON.parse(text); } catch (e) { body = null; }
        if (!body || typeof body !== "object") {
          body = { ok: false };
          if (response.status === 413) {
            body.message = t("http.too_large");
          } else if (response.status >= 500) {
            body.message = UNAVAILABLE;
          } else if (response.status === 429) {
            body.message = t("http.rate_limited");
          } else {
            body.message = t("http.other", { status: String(response.status) });
          }
        }
        body.status = response.status;
        body.ok = response.ok && body.ok !== false;
        if (body.error === "reauth_required" && typeof body.reauth_url === "string" &&
            body.reauth_url.charAt(0) === "/" && body.reauth_url.charAt(1) !== "/") {
          // A sensitive change needs a fresh sign-in (reauth.py): the re-authentication page brings the user back.
          body.message = t("reauth.redirect");
          window.location.assign(body.reauth_url);
        }
        return body;
      });
    });
  }

  function postJSON(url, payload) {
    return request(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
  }

  function postForm(url, formData) {
    return request(url, { method: "POST", body: formData });
  }

  /* What went wrong with the camera, and what the person can do about it. */
  function explainCameraError(error) {
    var name = error && error.name ? error.name : "";
    if (name === "InsecureContext") {
      return {
        title: t("camera.insecure.title"),
        message: t("camera.insecure.message"),
        steps: [t("camera.insecure.step")]
      };
    }
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
      return {
        title: t("camera.blocked.title"),
        message: t("camera.blocked.message"),
        steps: [t("camera.blocked.step1"), t("camera.blocked.step2"), t("camera.blocked.step3")]
      };
    }
    if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
      return {
        title: t("camera.missing.title"),
        message: t("camera.missing.message"),
        steps: [t("camera.missing.step")]
      };
    }
    if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
      return {
        title: t("camera.busy.title"),
        message: t("camera.busy.message"),
        steps: [t("camera.busy.step")]
      };
    }
    return {
      title: t("camera.failed.title"),
      message: t("camera.failed.message"),
      steps: [t("camera.failed.step")]
    };
  }

  /* -- The screen-flash challenge (issue 12) --------------------------------------------------------
   * The server picks a sequence of screen colours; the page paints them around the capture while the frames are
   * taken, and the liveness service checks that the face reflects them (a pre-recorded or injected clip does not). */

  // WCAG 2.3.1 (three flashes): never more than three changes in any one second, whatever the server sends.
  var MIN_FLASH_STEP_MS = 334;
  var MAX_FLASH_STEPS = 16;
  var HEX_COLOUR = /^#[0-9a-fA-F]{6}$/;

  /* The challenge's "flash" member, checked: null (flash off) or {steps: [{colour, duration_ms}], notice_ms}.
   * Throws on a malformed sequence: painting a guess would only get the person refused. */
  function flashPlan(flash) {
    if (flash === null || flash === undefined) { return null; }
    if (typeof flash !== "object" || !Array.isArray(flash.steps) || !flash.steps.length ||
        flash.steps.length > MAX_FLASH_STEPS) {
      throw new Error("malformed flash sequence");
    }
    var steps = flash.steps.map(function (step) {
      if (!step || typeof step.colour !== "string" || !HEX_COLOUR.test(step.colour)) {
        throw new Error("malformed flash colour");
      }
      var duration = Math.round(Number(step.duration_ms));
      return { colour: step.colour.toLowerCase(), duration_ms: Math.max(MIN_FLASH_STEP_MS, duration || 0) };
    });
    var notice = Math.round(Number(flash.notice_ms));
    var lead = Math.round(Number(flash.lead_ms));
    return {
      steps: steps,
      notice_ms: notice > 0 ? notice : 0,
      lead_ms: lead > 0 ? lead : 0,
      total_ms: steps.reduce(function (sum, step) { return sum + step.duration_ms; }, 0)
    };
  }

  function prefersReducedMotion() {
    return Boolean(window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches);
  }

  /* The full-viewport colour layer behind the capture (one per page, made on first use). The colour travels in a
   * CSS custom property set through the CSSOM, which the strict CSP allows (no style attribute in the markup);
   * data-colour says which colour is painted now ("" when none). */
  function FlashLayer() {
    var layer = document.getElementById("flash-layer");
    if (!layer) {
      layer = document.createElement("div");
      layer.id = "flash-layer";
      layer.className = "flash-layer";
      layer.setAttribute("aria-hidden", "true");
      layer.hidden = true;
      layer.dataset.colour = "";
      document.body.appendChild(layer);
    }
    this.el = layer;
    this.frame = null;
    this.finish = null;
  }

  FlashLayer.prototype.paint = function (colour) {
    document.documentElement.style.setProperty("--flash-colour", colour);
    document.documentElement.classList.add("is-flashing");
    this.el.hidden = false;
    this.el.dataset.colour = colour;
  };

  /* Normal colours again, and any running sequence ended (its promise resolves with what was painted so far). */
  FlashLayer.prototype.stop = function () {
    if (this.frame !== null) {
      window.cancelAnimationFrame(this.frame);
      this.frame = null;
    }
    this.el.hidden = true;
    this.el.dataset.colour = "";
    document.documentElement.classList.remove("is-flashing");
    document.documentElement.style.removeProperty("--flash-colour");
    if (this.finish) {
      var finish = this.finish;
      this.finish = null;
      finish();
    }
  };

  /* Paints each step for at least its duration. Every change happens in an animation-frame callback, so it is in
   * the very frame that callback precedes, and the frame's timestamp (the performance.now() clock) is when it was
   * painted. The next change waits for that step's full duration after its own paint, so a late frame makes a
   * step longer, never shorter. onFirstPaint(timestamp) runs when the first colour is painted; the promise
   * resolves with every step's paint time once the sequence is over (or stop() was called). */
  FlashLayer.prototype.play = function (steps, onFirstPaint) {
    var self = this;
    this.stop();
    return new Promise(function (resolve) {
      var painted = [];
      self.finish = function () { resolve(painted); };
      function tick(timestamp) {
        self.frame = null;
        var index = painted.length - 1;
        if (index < 0 || timestamp - painted[index] >= steps[index].duration_ms) {
          index += 1;
          if (index >= steps.length) {
            self.stop();
            return;
          }
          self.paint(steps[index].colour);
          painted.push(timestamp);
          if (index === 0 && onFirstPaint) { onFirstPaint(timestamp); }
        }
        self.frame = window.requestAnimationFrame(tick);
      }
      self.frame = window.requestAnimationFrame(tick);
    });
  };

  function FaceCapture(root) {
    this.root = root;
    this.video = root.querySelector(".capture__video");
    this.overlay = root.querySelector(".capture__overlay");
    this.promptEl = root.querySelector(".capture__prompt");
    this.progress = root.querySelector("progress");
    this.statusEl = root.querySelector(".capture__status");
    this.helpEl = root.querySelector(".capture__help");
    this.placeholderIcon = root.querySelector(".capture__placeholder img");
    this.placeholderText = root.querySelector(".capture__placeholder p");
    this.placeholderDefault = {
      src: this.placeholderIcon.getAttribute("src"),
      text: this.placeholderText.textContent
    };
    this.config = {
      frames: parseInt(root.dataset.frames, 10) || 15,
      fps: parseFloat(root.dataset.fps) || 10,
      width: parseInt(root.dataset.width, 10) || 640,
      height: parseInt(root.dataset.height, 10) || 480,
      jpegQuality: parseFloat(root.dataset.jpegQuality) || 0.85,
      placementWaitMs: parseInt(root.dataset.placementWaitMs, 10) || 4000
    };
    this.hintEl = root.querySelector(".capture__hint");
    this.stream = null;
    this.overlayState = "idle";
    this.canvas = document.createElement("canvas");
    this.flash = null;  // the current challenge's flash plan (flashPlan), or null
    this.flashLayer = new FlashLayer();
    this.filming = false;
    // What the tests read: captures dropped because the face left within the hold, flash sequences started.
    this.stats = { dropped: 0, flashes: 0 };
    window.__faceauthCapture = this.stats;
    // The flash notice beside the camera (login and enrollment pages) is read from the moment the page shows it.
    var pageNotice = document.getElementById("flash-hint");
    this.pageNoticeAt = pageNotice && !pageNotice.hidden ? performance.now() : null;
    var self = this;
    this.guide = null;
    if (window.FaceauthGuidance && this.hintEl) {
      this.guide = new window.FaceauthGuidance.Guide(root, this.video, this.hintEl, function (state) {
        if (self.filming) { return; }  // the capture's own overlay
        self.drawOverlay(state === "placed" ? "placed" : (state === "unavailable" ? "idle" : "adjust"));
      });
      // The detector and its model load with the page (no camera involved), so that guidance starts at once.
      this.guide.preload();
    }
    window.addEventListener("resize", function () { self.drawOverlay(); });
    window.addEventListener("pagehide", function () { self.close(); });
  }

  /* Settings returned with a challenge override the page's defaults; flash is the challenge's "flash" member
   * (null: no flash). Throws on a malformed flash sequence. */
  FaceCapture.prototype.configure = function (capture, flash) {
    this.flash = flashPlan(flash);
    if (!capture) { return; }
    if (capture.frames) { this.config.frames = capture.frames; }
    if (capture.fps) { this.config.fps = capture.fps; }
    if (capture.width) { this.config.width = capture.width; }
    if (capture.height) { this.config.height = capture.height; }
    if (capture.jpeg_quality) { this.config.jpegQuality = capture.jpeg_quality; }
    if (capture.placement_wait_ms) { this.config.placementWaitMs = capture.placement_wait_ms; }
    this.progress.max = this.config.frames;
  };

  FaceCapture.prototype.open = function () {
    var self = this;
    if (this.stream) { return Promise.resolve(); }
    if (!window.isSecureContext) {
      return Promise.reject({ name: "InsecureContext" });
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return Promise.reject({ name: "NotFoundError" });
    }
    // The browser may now ask for permission (outside the page): say what we are waiting for.
    this.placeholderText.textContent = t("camera.waiting");
    return navigator.mediaDevices.getUserMedia({
      audio: false,
      video: {
        width: { ideal: this.config.width },
        height: { ideal: this.config.height },
        facingMode: "user"
      }
    }).then(function (stream) {
      self.stream = stream;
      self.video.srcObject = stream;
      return self.video.play();
    }).then(function () {
      return self.waitForVideo();
    }).then(function () {
      self.root.classList.add("capture--live");
      self.drawOverlay();
    });
  };

  FaceCapture.prototype.waitForVideo = function () {
    var video = this.video;
    return new Promise(function (resolve) {
      (function poll() {
        if (video.readyState >= 2 && video.videoWidth > 0) { resolve(); } else { setTimeout(poll, 50); }
      })();
    });
  };

  FaceCapture.prototype.close = function () {
    this.flashLayer.stop();
    this.stopGuide();
    if (this.stream) {
      this.stream.getTracks().forEach(function (track) { track.stop(); });
      this.stream = null;
    }
    this.root.classList.remove("capture--live");
  };

  /* The oval guide: the area outside it is dimmed; its colour follows the state. */
  FaceCapture.prototype.drawOverlay = function (state) {
    if (state) { this.overlayState = state; }
    var canvas = this.overlay;
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) { return; }
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    // The guide belongs on the live picture; over the placeholder (no camera yet, or none at all) it only hides it.
    if (!this.stream) { return; }
    var rx = Math.min(width * 0.24, height * 0.28), ry = rx * 1.3;
    var cx = width / 2, cy = height * 0.47;
    ctx.fillStyle = "rgba(15, 23, 42, 0.45)";
    ctx.beginPath();
    ctx.rect(0, 0, width, height);
    ctx.ellipse(cx, cy, rx, ry, 0, 0, Math.PI * 2, true);
    ctx.fill("evenodd");
    // adjust: a face the guide would have moved; placed: well placed (the capture starts by itself).
    var colours = {
      idle: "#ffffff", adjust: "#fbbf24", placed: "#4ade80", capturing: "#818cf8", ok: "#4ade80", error: "#f87171"
    };
    ctx.strokeStyle = colours[this.overlayState] || colours.idle;
    ctx.lineWidth = this.overlayState === "placed" ? 6 : 4;
    ctx.setLineDash(this.overlayState === "idle" ? [10, 8] : []);
    ctx.beginPath();
    ctx.ellipse(cx, cy, rx, ry, 0, 0, Math.PI * 2);
    ctx.stroke();
  };

  FaceCapture.prototype.showPrompt = function (text) {
    if (text) {
      this.promptEl.textContent = text;
      this.promptEl.hidden = false;
    } else {
      this.promptEl.hidden = true;
    }
  };

  FaceCapture.prototype.status = function (text, kind) {
    this.statusEl.textContent = text || "";
    this.statusEl.className = "capture__status" + (kind ? " capture__status--" + kind : "");
  };

  FaceCapture.prototype.clearHelp = function () {
    this.helpEl.hidden = true;
    this.helpEl.textContent = "";
    this.setPlaceholder(null);
  };

  /* The stage without video: the invitation to start, or (with a camera problem) what is wrong. */
  FaceCapture.prototype.setPlaceholder = function (problem) {
    this.root.classList.toggle("capture--unavailable", Boolean(problem));
    this.placeholderText.textContent = problem ? problem.title : this.placeholderDefault.text;
    this.placeholderIcon.setAttribute(
      "src", problem ? this.placeholderIcon.dataset.unavailableSrc : this.placeholderDefault.src
    );
  };

  FaceCapture.prototype.showCameraError = function (error) {
    var explained = explainCameraError(error);
    this.status(explained.message, "error");
    this.helpEl.textContent = "";
    var title = document.createElement("p");
    title.textContent = t("camera.how_to_fix");
    var list = document.createElement("ol");
    explained.steps.forEach(function (step) {
      var item = document.createElement("li");
      item.textContent = step;
      list.appendChild(item);
    });
    this.helpEl.appendChild(title);
    this.helpEl.appendChild(list);
    this.helpEl.hidden = false;
    this.close();
    this.setPlaceholder(explained);
    this.drawOverlay("error");
  };

  FaceCapture.prototype.stopGuide = function () {
    if (this.hintEl) { this.hintEl.hidden = true; }
    return this.guide ? this.guide.stop() : Promise.resolve();
  };

  /* Before the capture: the challenge's prompt(s) and, with a flash, its notice — text in the status line
   * (aria-live), the first prompt in the bubble — while the guide helps place the face. Returns the time
   * (performance.now() clock) before which the capture must not start: the flash notice must have been on screen
   * for its notice_ms — the page's own notice beside the camera counts from when the page showed it; with
   * prefers-reduced-motion the announced one, from now, and at least 3 s. */
  FaceCapture.prototype.announce = function (prompts) {
    var flash = this.flash;
    prompts = prompts && prompts.length ? prompts : [t("prompt.default")];
    var steps = prompts.map(inline).join(t("prompt.joiner"));
    var text = t("announce", { steps: steps });
    var now = performance.now(), notBefore = now;
    if (flash) {
      // The flash notice first: it is what the person must know before anything changes on the screen.
      var clearer = prefersReducedMotion();
      var seconds = Math.max(1, Math.round(flash.total_ms / 500) / 2);
      var count = flash.steps.length;
      var facts = { count: count, seconds: seconds };
      var notice = clearer ? t("flash.notice_clear", facts) : t("flash.notice", facts);
      text = notice + " " + text;
      this.root.classList.add("capture--notice");
      this.root.classList.toggle("capture--notice-clear", clearer);
      // A clearer notice also stays longer, so that it can be read in full before anything changes.
      if (clearer) {
        notBefore = now + Math.max(flash.notice_ms, 3000);
      } else {
        var shownAt = this.pageNoticeAt === null ? now : this.pageNoticeAt;
        notBefore = Math.max(now, shownAt + flash.notice_ms);
      }
    }
    this.showPrompt(t("prompt.next", { prompt: inline(prompts[0]) }));
    this.status(text, flash ? "notice" : "");
    return notBefore;
  };

  /* Resolves {confirmMs} once the capture may start, at notBefore (performance.now() clock) or later: with a
   * quick detector as soon as the face is placed (with the flash PLACED_HOLD_MS - lead_ms before, so that no
   * colour is painted before the hold is over), the guide still running for the confirmMs that remain of the hold;
   * otherwise once it has been placed for PLACED_HOLD_MS, the guide stopped (confirmMs 0). "expired" at deadline
   * (the challenge would be too old: capture.js asks for a new one). */
  FaceCapture.prototype.waitUntilPlaced = function (notBefore, deadline) {
    var guide = this.guide, self = this, flash = this.flash;
    var unguidedAt = performance.now() + UNGUIDED_LEAD_MS;
    if (guide && !guide.running) { guide.start(); }
    return new Promise(function (resolve) {
      (function poll() {
        var now = performance.now();
        var unguided = !guide || guide.stats.available === false;
        var quick = !unguided && guide.isQuick();
        var hold = quick ? (flash ? Math.max(0, PLACED_HOLD_MS - flash.lead_ms) : 0) : PLACED_HOLD_MS;
        var ready = unguided ? now >= unguidedAt : guide.isPlaced() && guide.placedFor() >= hold;
        if (ready && now >= notBefore) {
          var confirmMs = quick ? Math.max(0, PLACED_HOLD_MS - guide.placedFor()) : 0;
          if (confirmMs > 0) {
            resolve({ confirmMs: confirmMs });
          } else {
            // The capture starts once the last detection is over (it would hold up the first frames).
            self.stopGuide().then(function () { resolve({ confirmMs: 0 }); });
          }
        } else if (now >= deadline) {
          resolve("expired");
        } else {
          setTimeout(poll, 40);
        }
      })();
    });
  };

  /* One frame as JPEG, the full camera image scaled/cropped to width x height, NOT mirrored. */
  FaceCapture.prototype.grab = function () {
    var cfg = this.config, video = this.video, canvas = this.canvas;
    canvas.width = cfg.width;
    canvas.height = cfg.height;
    var vw = video.videoWidth, vh = video.videoHeight;
    var scale = Math.max(cfg.width / vw, cfg.height / vh);
    var sw = cfg.width / scale, sh = cfg.height / scale;
    var ctx = canvas.getContext("2d");
    ctx.drawImage(video, (vw - sw) / 2, (vh - sh) / 2, sw, sh, 0, 0, cfg.width, cfg.height);
    return new Promise(function (resolve, reject) {
      canvas.toBlob(function (blob) {
        if (blob) { resolve(blob); } else { reject(new Error("could not encode a frame")); }
      }, "image/jpeg", cfg.jpegQuality);
    });
  };

  /* The capture (after announce() and waitUntilPlaced()), with the flash painted from lead_ms after its first frame
   * on; each action's prompt is shown for its share of the frames. For the first confirmMs the guide goes on
   * judging: if the face leaves the oval in that time, the capture rejects with {moved: true} (no colour has been
   * painted yet) and its frames are dropped. Resolves with {frames, times, flashStartMs}; the screen is back to
   * normal colours however it ends. */
  FaceCapture.prototype.run = function (prompts, confirmMs) {
    var self = this, cfg = this.config, flash = this.flash;
    prompts = prompts && prompts.length ? prompts : [t("prompt.default")];
    var frames = [], times = [];
    var flashStartMs = null;
    var interval = 1000 / cfg.fps;
    this.progress.max = cfg.frames;
    this.progress.value = 0;
    this.root.classList.remove("capture--notice", "capture--notice-clear");
    this.filming = true;
    this.drawOverlay("capturing");

    var moved = false;
    var confirmUntil = performance.now() + (confirmMs || 0);
    var watch = confirmMs > 0 ? setInterval(function () { confirmPlaced(false); }, 40) : null;
    /* During the hold's rest: false once the face has left the oval; the guide stops when the hold is over, or
     * at the first colour (final: its lead-in and the hold end together). */
    function confirmPlaced(final) {
      if (watch === null) { return !moved; }
      if (!self.guide.isPlaced()) {
        moved = true;
      } else if (!final && performance.now() < confirmUntil) {
        return true;
      } else {
        self.stopGuide();
      }
      clearInterval(watch);
      watch = null;
      return !moved;
    }

    // started: the first frame's capture time (frame_times_ms count from it).
    function shoot(index, started) {
      if (!confirmPlaced()) { return Promise.reject({ moved: true }); }
      if (index >= cfg.frames) { return Promise.resolve(started); }
      var action = Math.min(prompts.length - 1, Math.floor(index * prompts.length / cfg.frames));
      self.showPrompt(prompts[action]);
      self.status(t("capture.capturing", { prompt: inline(prompts[action]) }));
      var at = performance.now();
      if (index === 0) { started = at; }
      return self.grab().then(function (blob) {
        frames.push(blob);
        times.push(Math.round(at - started));
        self.progress.value = index + 1;
        if (index + 1 >= cfg.frames) { return null; }  // the last frame: nothing left to wait for
        var wait = started + (index + 1) * interval - performance.now();
        return sleep(Math.max(0, wait));
      }).then(function () { return shoot(index + 1, started); });
    }

    /* The capture, and the flash from lead_ms after its first frame (those first frames show the face in the room's
     * own light: the passive check judges them). flashStartMs: when the first colour was painted, on the frame clock. */
    function flashAndShoot() {
      if (!flash) { return shoot(0); }
      var layer = self.flashLayer;
      return new Promise(function (resolve, reject) {
        var paintedAt = null, failed = false;
        var startedAt = performance.now();
        function fail(error) {
          if (failed) { return; }
          failed = true;
          layer.stop();
          reject(error);
        }
        // Animation frames stop while the page is hidden: without a first paint the capture is useless.
        var watchdog = setTimeout(function () {
          if (paintedAt === null) {
            fail({ shown: true, message: t("flash.keep_visible") });
          }
        }, flash.lead_ms + 1500);
        setTimeout(function () {
          if (failed || !confirmPlaced(true)) { return; }
          self.stats.flashes += 1;
          layer.play(flash.steps, function (at) {
            timing.mark("flash");
            paintedAt = at;
            clearTimeout(watchdog);
          });
        }, Math.max(0, flash.lead_ms - (performance.now() - startedAt)));
        shoot(0).then(function (firstFrameAt) {
          if (failed) { return; }
          if (paintedAt === null) {
            fail({ shown: true, message: t("flash.keep_visible") });
            return;
          }
          clearTimeout(watchdog);
          flashStartMs = Math.round(paintedAt - firstFrameAt);
          resolve();
        }, fail);
      });
    }

    return flashAndShoot().then(function () {
      self.flashLayer.stop();
      self.filming = false;
      self.showPrompt("");
      return { frames: frames, times: times, flashStartMs: flashStartMs };
    }, function (error) {
      if (watch !== null) { clearInterval(watch); }
      self.flashLayer.stop();
      self.filming = false;
      self.progress.value = 0;
      self.root.classList.remove("capture--notice", "capture--notice-clear");
      throw error;
    });
  };

  FaceCapture.prototype.formData = function (shot, fields) {
    var data = new FormData();
    Object.keys(fields).forEach(function (key) { data.append(key, fields[key]); });
    data.append("frame_times_ms", JSON.stringify(shot.times));
    if (shot.flashStartMs !== null && shot.flashStartMs !== undefined) {
      // When the first colour was painted, on the frame_times_ms clock (about lead_ms after the first frame).
      data.append("flash_start_ms", String(shot.flashStartMs));
    }
    shot.frames.forEach(function (blob, index) { data.append("frames", blob, "frame-" + index + ".jpg"); });
    return data;
  };

  /* The whole flow shared by sign-in and enrollment. */
  function bindCaptureForm(form, options) {
    var capture = new FaceCapture(form.querySelector(".capture"));
    var button = form.querySelector("button[type=submit]");
    var busy = false;

    function finish(state) {
      busy = false;
      button.disabled = false;
      button.removeAttribute("aria-busy");
      capture.flashLayer.stop();
      capture.showPrompt("");
      capture.stopGuide();
      capture.root.classList.remove("capture--notice", "capture--notice-clear");
      capture.drawOverlay(state);
    }

    function fetchChallenge() {
      return postJSON(form.dataset.challengeUrl, options.challengePayload ? options.challengePayload() : {});
    }

    /* One challenge: announce it, wait for the face to be placed (a new challenge when that takes longer than the
     * server allows), capture, post. Resolves with {result, challenge, shot}. */
    function attempt(challenge, tries) {
      if (!challenge.ok) {
        capture.status(challenge.message || UNAVAILABLE, "error");
        throw { handled: true, state: "error" };
      }
      timing.mark("challenge");
      try {
        capture.configure(challenge.capture, challenge.flash);
      } catch (error) {
        capture.status(t("capture.prepare_failed"), "error");
        throw { handled: true };
      }
      var received = performance.now();
      var notBefore = capture.announce(challenge.prompts);
      // Leave the upload its time inside the server's limit (placement wait + notice + capture + slack).
      var deadline = received + capture.config.placementWaitMs;
      function placeAndShoot() {
        return capture.waitUntilPlaced(notBefore, deadline).then(function (outcome) {
          if (outcome === "expired") {
            if (tries >= 20) {
              capture.status(t("capture.not_placed"), "error");
              throw { handled: true };
            }
            return fetchChallenge().then(function (next) { return attempt(next, tries + 1); });
          }
          timing.mark("placed");
          return capture.run(challenge.prompts, outcome.confirmMs).then(function (shot) {
            timing.mark("captured");
            // The camera goes off as soon as its frames are taken (another try opens it again).
            capture.close();
            capture.status(t("capture.checking"));
            var fields = Object.assign({ nonce: challenge.nonce }, options.extraFields ? options.extraFields() : {});
            return postForm(form.dataset.submitUrl, capture.formData(shot, fields)).then(function (result) {
              timing.mark("verdict");
              return { result: result, challenge: challenge, shot: shot };
            });
          }, function (error) {
            if (!error || !error.moved) { throw error; }
            capture.stats.dropped += 1;
            // The face left the oval within the hold: the frames are dropped and the same challenge waits again.
            capture.announce(challenge.prompts);
            capture.drawOverlay("adjust");
            return placeAndShoot();
          });
        });
      }
      return placeAndShoot();
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) { return; }
      var problem = options.validate ? options.validate() : null;
      if (problem) {
        capture.status(problem.message, "error");
        if (problem.field) { problem.field.focus(); }
        return;
      }
      busy = true;
      timing.reset();
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      capture.clearHelp();
      capture.progress.value = 0;
      // The flow's first factor (password or passkey), when the page has one, is checked before the camera starts.
      var firstFactor = options.beforeCamera ? options.beforeCamera() : Promise.resolve({ ok: true });
      capture.status(options.beforeCamera ? t("capture.checking") : t("capture.starting"));
      firstFactor.then(function (first) {
        if (!first || !first.ok) {
          capture.status((first && first.message) || UNAVAILABLE, "error");
          if (options.onFailure) { options.onFailure(first || {}); }
          throw { handled: true };
        }
        capture.status(t("capture.starting"));
      }, function () {
        capture.status(t("network_failed"), "error");
        throw { handled: true };
      }).then(function () {
        timing.mark("firstFactor");
        // The challenge is asked for while the camera starts (it needs no camera; the first factor has passed).
        var challenge = fetchChallenge();
        challenge.catch(function () {});
        return capture.open().then(function () {
          timing.mark("camera");
          capture.status(t("capture.place_face"));
          if (capture.guide) { capture.guide.start(); }
          return challenge;
        }, function (error) {
          if (error && error.handled) { throw error; }
          capture.showCameraError(error);
          throw { handled: true };
        });
      }).then(function (challenge) {
        return attempt(challenge, 0);
      }).then(function (outcome) {
        var result = outcome.result;
        if (options.onResult) {
          // A page that shows the result itself (the flash calibration) instead of redirecting.
          var state = options.onResult(result, outcome.challenge, outcome.shot);
          finish(state || (result.ok ? "ok" : "error"));
        } else if (result.ok) {
          capture.status(result.message || t("capture.done"), "ok");
          finish("ok");
          button.disabled = true;
          var target = form.dataset.next || result.redirect || form.dataset.successUrl;
          // At once: the verdict is on screen while the next page loads (a pause here was 0.6 s of every login).
          timing.mark("redirect");
          timing.keep(capture.statusEl.textContent);
          window.location.assign(target);
        } else {
          capture.status(result.message || UNAVAILABLE, "error");
          if (options.onFailure) { options.onFailure(result); }
          finish("error");
        }
      }).catch(function (error) {
        if (error && !error.handled && typeof error.message === "string" && error.shown) {
          capture.status(error.message, "error");
        } else if (!error || !error.handled) {
          capture.status(t("network_failed"), "error");
        }
        finish("error");
      });
    });
    return capture;
  }

  window.FaceauthCapture = {
    FaceCapture: FaceCapture,
    bindCaptureForm: bindCaptureForm,
    explainCameraError: explainCameraError,
    flashPlan: flashPlan,
    MIN_FLASH_STEP_MS: MIN_FLASH_STEP_MS,
    postJSON: postJSON,
    postForm: postForm
  };
})();
