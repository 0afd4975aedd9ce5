"""/api/v1/docs: Swagger UI from the installed package, in a real browser with every other
host unreachable, under our Content-Security-Policy."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import expect, sync_playwright
from swagger_ui_bundle import swagger_ui_path

from tests.admin.test_browser import ARGS, ARTIFACTS, CHROMIUM


def test_docs_need_no_key_and_serve_only_the_package_files(app):
    client = app.test_client()
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and "text/html" in page.content_type
    assert "<script>" not in page.text and "swagger-ui-bundle.js" in page.text
    bundle = client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert bundle.data == open(f"{swagger_ui_path}/swagger-ui-bundle.js", "rb").read()
    assert client.get("/api/v1/docs/init.js").mimetype == "text/javascript"
    for name in ("index.html", "..%2Fswagger-ui.css", "oauth2-redirect.html"):
        assert client.get(f"/api/v1/docs/assets/{name}").status_code == 404
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_docs_render_offline_under_the_csp(live_server):
    ARTIFACTS.mkdir(exist_ok=True)
    own = urlsplit(live_server).netloc
    outside, console = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})

        def only_ours(route):
            if urlsplit(route.request.url).netloc == own:
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_ours)
        page = context.new_page()
        page.set_default_timeout(15000)
        page.on("console", lambda message: console.append(message.text))
        page.goto(f"{live_server}/api/v1/docs")
        expect(page.locator(".info .title")).to_contain_text("Leadbridge API")
        operation = page.locator(".opblock-summary-path", has_text="/webhook-endpoints").first
        expect(operation).to_be_visible()
        expect(page.locator(".opblock-summary-path", has_text="/events")).to_be_visible()
        operation.click()
        expect(page.get_by_text("403").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=False)
        context.close()
        browser.close()
    assert [m for m in console if "Content Security Policy" in m or "Refused" in m] == []
    assert outside == [], "the docs reach for nothing outside the server"
