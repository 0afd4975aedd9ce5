"""The panel's own static files (its stylesheet), served at /admin/assets/ to anyone: the
login page uses them too. The layout that links them is templates/admin/master.html."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint

assets = Blueprint("panel_assets", __name__, static_folder=Path(__file__).parent / "static",
                   static_url_path="/admin/assets")
