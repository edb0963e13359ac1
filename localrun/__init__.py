"""The local run: ``make run`` (``python -m localrun``) starts the whole faceauth stack as child processes of one
command. One module per concern:

- ``settings``: ``RunSettings`` from the environment, ``RunError`` (a problem the user can fix);
- ``network``: ``HOST:PORT`` parsing, ``service_target()``, port checks;
- ``stores``: where Postgres and Redis are (database creation, the embedded SQLite + fakeredis fallback);
- ``certificates``: the gateway's self-signed certificate, the gRPC mutual TLS CA and certificates;
- ``gateway``: nginx config rendered from ``gateway/nginx.conf.template``, the nginx command line;
- ``services``: each service's command and readiness probe, ``child_environment()`` (what every child gets);
- ``readiness``: gRPC health and HTTP probes, ``wait_until_ready()``;
- ``supervisor``: ``Supervisor`` (process groups, log lines on one ``Console``, ordered stop, ``stop(name)`` /
  ``restart(name)`` of one child), ``restart_crashed()``;
- ``__main__``: ``run()``, the order the parts are used in, and ``main()``.

The parts are public for tests that need the stack but not this exact loop (tests/e2e/stack.py).
"""
