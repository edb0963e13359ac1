/* Served by bench/guidance_bench.py under the same CSP as auth-web: face-api's tiny face detector on the fake
 * camera's video, timed per detection (window.__guidanceBench holds the result); ?backend=wasm loads tfjs's WASM
 * binaries from the vendored tfjs-backend-wasm folder, as guidance.js does. */
(async function () {
  "use strict";
  var params = new URLSearchParams(window.location.search);
  var inputSize = parseInt(params.get("input") || "160", 10);
  var count = parseInt(params.get("n") || "60", 10);
  var result = { inputSize: inputSize };
  try {
    var video = document.getElementById("video");
    var started = performance.now();
    var backend = params.get("backend");
    if (backend === "wasm") { faceapi.tf.setWasmPaths("vendor/tfjs-backend-wasm@4.22.0/"); }
    if (backend && !(await faceapi.tf.setBackend(backend))) { throw new Error("backend " + backend + " failed"); }
    await faceapi.tf.ready();
    await faceapi.nets.tinyFaceDetector.loadFromUri("vendor/face-api@1.7.15/model");
    result.backend = faceapi.tf.getBackend();
    result.load_ms = performance.now() - started;
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    await video.play();
    var options = new faceapi.TinyFaceDetectorOptions({ inputSize: inputSize, scoreThreshold: 0.5 });
    var first = performance.now();
    await faceapi.detectAllFaces(video, options);
    result.first_ms = performance.now() - first;
    var times = [], found = 0;
    for (var i = 0; i < count; i++) {
      var at = performance.now();
      var faces = await faceapi.detectAllFaces(video, options);
      times.push(performance.now() - at);
      if (faces.length) { found += 1; }
    }
    result.times_ms = times;
    result.found = found;
  } catch (error) {
    result.error = String(error && error.stack || error);
  }
  window.__guidanceBench = result;
})();
