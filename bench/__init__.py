"""faceauth benchmarks: component latency, end-to-end login load, the old pipeline, CPU cost, profiles.

Run the scripts as modules from the repository root (``.venv/bin/python -m bench.<script>``); see bench/README.md.
"""
