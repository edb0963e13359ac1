"""What each recognition optimisation buys: Verify on one 8-frame capture, in process, per configuration.

The recognition servicer is loaded once per configuration with the ``RECOGNITION_*`` settings changed
(everything else as configured), and its ``Verify`` handler is called ``--calls`` times on the same capture
and templates. Per call: median wall time and this process's CPU time. Configurations, from the old way to ours:

  - ``old-style``: detection on the full 640×480 frame with one upsampling step (what
    ``face_recognition.face_encodings(frame)`` does), every usable frame embedded, no early stop;
  - ``full-res``: the full frame without upsampling, every frame embedded;
  - ``downscaled``: frames downscaled to 320 px before HOG, every frame embedded;
  - ``default``: downscaled, at most 4 embeddings, early stop once the decision cannot change (the shipped settings).

    .venv/bin/python -m bench.ablation [--calls 5]
"""

from __future__ import annotations

import argparse
import os
import time

from bench import report
from bench.frames import DEFAULT_CLIP
from bench.profile_stages import DirectContext, load_handlers
from bench.scenario import build_scenario
from faceauth.recognition.v1 import recognition_pb2

LOGIN_FRAMES = 8
CONFIGURATIONS = {
    "old-style": {
        "RECOGNITION_VERIFY_MAX_SIDE": "640",
        "RECOGNITION_VERIFY_UPSAMPLE": "1",
        "RECOGNITION_VERIFY_MAX_EMBEDDINGS": "0",
        "RECOGNITION_VERIFY_EARLY_STOP": "false",
    },
    "full-res": {
        "RECOGNITION_VERIFY_MAX_SIDE": "640",
        "RECOGNITION_VERIFY_UPSAMPLE": "0",
        "RECOGNITION_VERIFY_MAX_EMBEDDINGS": "0",
        "RECOGNITION_VERIFY_EARLY_STOP": "false",
    },
    "downscaled": {
        "RECOGNITION_VERIFY_MAX_SIDE": "320",
        "RECOGNITION_VERIFY_UPSAMPLE": "0",
        "RECOGNITION_VERIFY_MAX_EMBEDDINGS": "0",
        "RECOGNITION_VERIFY_EARLY_STOP": "false",
    },
    "default": {},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default=DEFAULT_CLIP)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--start-ms", type=int, default=5667, help="start of the 8-frame capture in the clip")
    parser.add_argument("--note", default="")
    parser.add_argument("--name", default="ablation_recognition")
    args = parser.parse_args(argv)

    machine = report.machine_details(contention_note=args.note)
    scenario = build_scenario(args.clip)
    capture = [frame for frame in scenario.login_pool if frame.time_ms >= args.start_ms][:LOGIN_FRAMES]
    shipped = {key: os.environ.get(key) for config in CONFIGURATIONS.values() for key in config}
    results = []
    templates = None
    for label, overrides in CONFIGURATIONS.items():
        for key, value in shipped.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.environ.update(overrides)
        handlers = load_handlers("recognition_service")
        if templates is None:
            encoded = handlers["Encode"](
                recognition_pb2.EncodeRequest(images=[frame.jpeg for frame in scenario.enroll]), DirectContext()
            )
            templates = [recognition_pb2.Template(embedding=list(f.embedding)) for f in encoded.faces if f.embedding]
        request = recognition_pb2.VerifyRequest(frames=[frame.jpeg for frame in capture], templates=templates)
        response = handlers["Verify"](request, DirectContext())  # warm-up
        durations = []
        cpu_started = time.process_time()
        for _ in range(args.calls):
            started = time.perf_counter()
            handlers["Verify"](request, DirectContext())
            durations.append(time.perf_counter() - started)
        cpu = (time.process_time() - cpu_started) / args.calls
        results.append(
            {
                "configuration": label,
                "settings": overrides or "shipped defaults",
                "latency": report.summarise_ms(durations),
                "cpu_seconds_per_call": round(cpu, 4),
                "match": response.match,
                "reason": recognition_pb2.VerifyReason.Name(response.reason),
                "compared_frames": response.compared_frames,
            }
        )
        print(results[-1], flush=True)
    for key, value in shipped.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

    data = {"benchmark": "ablation_recognition", "machine": machine, "clip": args.clip, "results": results}
    rows = [
        [
            r["configuration"],
            r["latency"]["median_ms"],  # type: ignore[index]
            r["cpu_seconds_per_call"],
            r["compared_frames"],
            r["reason"],
            "; ".join(f"{k}={v}" for k, v in r["settings"].items()) if isinstance(r["settings"], dict) else "",
        ]
        for r in results
    ]
    body = (
        f"recognition `Verify` on one 8-frame capture of `{args.clip}` (from {capture[0].time_ms} ms), in process, "
        f"{args.calls} calls per configuration after a warm-up.\n\n"
        + report.markdown_table(
            ["configuration", "median ms", "CPU-s/call", "frames embedded", "decision", "settings"], rows
        )
    )
    json_path, md_path = report.write_result(args.name, "Recognition optimisations, one at a time", data, body)
    print(body)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
