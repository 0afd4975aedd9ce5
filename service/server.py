"""The production web server: gunicorn, each worker building the app once. Threads
(gthread) by default: browsers open speculative connections that would each hold a sync
worker until its timeout. Behind a buffering proxy, threads = 1 gives sync workers."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


class Server(BaseApplication):
    def __init__(self, config_path: str | None, options: dict):
        self.config_path, self.options = config_path, options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self):
        from . import create_app

        return create_app(self.config_path)


def serve(config_path: str | None, settings: dict) -> None:
    Server(config_path, {
        "bind": f"{settings['web.host']}:{settings['web.port']}",
        "workers": settings["web.workers"],
        "worker_class": "gthread" if settings["web.threads"] > 1 else "sync",
        "threads": settings["web.threads"],
        "timeout": 30,
        "graceful_timeout": 5,
        "accesslog": "-",
        "proc_name": "leadbridge-web",
        "control_socket_disable": True,
    }).run()
