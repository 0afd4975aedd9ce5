"""Checks of the panel's layout in a real browser, for any page: nothing makes the page
scroll sideways, how many list rows one screen shows, the menu's links. Used by the phone
and desktop walks (tests/admin/test_phones.py) and by any browser test that wants them."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import ROOT

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
# Where the walks save their screenshots: PANEL_SCREENSHOTS, else under test-artifacts/
# (git-ignored).
SCREENSHOTS = Path(os.environ.get("PANEL_SCREENSHOTS") or ROOT / "test-artifacts" / "phones")

# The elements reaching past the window's right edge, outermost first. One inside a box that
# scrolls or clips sideways (a list table's own scroller) does not widen the page: left out.
_OFFENDERS = """(limit) => {
  const clipped = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const x = getComputedStyle(p).overflowX;
      if (x !== 'visible') return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= limit + 0.5 || clipped(el)) continue;
    if (getComputedStyle(el).position === 'fixed') continue;
    const cls = typeof el.className === 'string' ? el.className : '';
    out.push(`${el.tagName.toLowerCase()}${cls ? '.' + cls.trim().split(/\\s+/).join('.') : ''}`
             + ` right=${Math.round(box.right)} width=${Math.round(box.width)}`);
  }
  return out.slice(0, 12);
}"""


def overflow(page) -> tuple[int, int]:
    """The page's scroll width and the window's width, in CSS pixels. The window is the
    device's: a phone browser zooms out on a page wider than the screen and then reports
    that wider page as its innerWidth."""
    scroll, inner = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]")
    return scroll, min(inner, page.viewport_size["width"])


def no_horizontal_overflow(page) -> None:
    """Assert the page does not scroll sideways; the message names the elements that stick
    out (tag.classes, right edge, width)."""
    scroll, inner = overflow(page)
    if scroll > inner:
        sticking_out = page.evaluate(_OFFENDERS, inner)
        raise AssertionError(f"{page.url} is {scroll} px wide in a {inner} px window; "
                             "sticking out:\n  " + "\n  ".join(sticking_out))


def rows_in_view(page, rows: str = "table.model-list tbody tr") -> int:
    """How many rows of the list are wholly inside the window without scrolling."""
    return page.evaluate("""(selector) => {
      const bottom = window.innerHeight;
      return [...document.querySelectorAll(selector)].filter(
        (row) => row.getBoundingClientRect().bottom <= bottom).length;
    }""", rows)


def menu_links(page) -> list[str]:
    """The paths of every page the panel's menu links to (its dropdowns included), in
    menu order, once each."""
    hrefs = page.eval_on_selector_all(
        "#admin-navbar-collapse a[href]",
        "links => links.map(a => a.getAttribute('href'))")
    paths = [h if "?" in h else h.rstrip("/") + "/" for h in hrefs if h.startswith("/")]
    return list(dict.fromkeys(paths))


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
