"""Rendered email shown inside the panel: sandboxed, no scripts, links open in a new tab."""

from flask import make_response

SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
CSP = (f"sandbox {SANDBOX}; default-src 'none'; style-src 'unsafe-inline'; "
       "img-src data: https:")


def sandboxed(html: str):
    response = make_response(html.replace("<head>", '<head><base target="_blank">', 1))
    response.headers["Content-Security-Policy"] = CSP
    return response
