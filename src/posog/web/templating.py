"""Jinja2 for every system's pages: one shared base layout (``web/templates/base.html``) and static
files (``web/static``), plus each system's own template folder. Autoescaping is always on."""

from __future__ import annotations

from pathlib import Path

from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from posog.core.russian import plural

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"


def make_templates(*system_dirs: Path) -> Jinja2Templates:
    """Templates of a system: its own folders first, then the shared ones."""
    templates = Jinja2Templates(directory=[*system_dirs, TEMPLATES_DIR])
    templates.env.autoescape = True
    templates.env.trim_blocks = True
    templates.env.lstrip_blocks = True
    templates.env.globals["plural"] = plural  # «1 символ», «2 символа», «5 символов»
    return templates


def static_files() -> StaticFiles:
    """Mount at ``/static`` (name ``static``) in each app that renders pages; nothing comes from a CDN."""
    return StaticFiles(directory=STATIC_DIR)
