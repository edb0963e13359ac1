"""python -m demo_app: serve the demo relying party on DEMO_LISTEN (gunicorn when installed, else Werkzeug)."""

from __future__ import annotations

from demo_app.app import DemoSettings, create_app


def main() -> None:
    settings = DemoSettings.from_env()
    app = create_app(settings)
    host, _, port = settings.listen.rpartition(":")
    print(f"demo-app: {settings.public_url}/ (signs in with {settings.issuer})", flush=True)
    from werkzeug.serving import run_simple

    run_simple(host or "127.0.0.1", int(port), app, threaded=True)


if __name__ == "__main__":
    main()
