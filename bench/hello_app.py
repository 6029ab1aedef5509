"""The benchmark's baseline: a hello-world Flask app, served by the same gunicorn settings as the real one."""
from __future__ import annotations

from flask import Flask

HELLO_PATH = "/hello"


def create_hello_app() -> Flask:
    app = Flask("hello")

    @app.route(HELLO_PATH, methods=["GET", "POST"])
    def hello():
        return "Hello, World!"

    return app
