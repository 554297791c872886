"""`GET /docs`: Swagger UI for /openapi.json, every asset served by the app itself (works offline).

The assets come from the `swagger-ui-bundle` package. The page has no inline script (the CSP for
/docs allows script-src 'self'): the initialiser is /docs/swagger-init.js, which reads the spec
URL from a data attribute.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template_string,
    send_from_directory,
    url_for,
)
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("docs", __name__, url_prefix="/docs")

ASSETS = frozenset({
    "swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png",
})

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{{ title }} - API documentation</title>
  <link rel="stylesheet" href="{{ url_for('docs.asset', filename='swagger-ui.css') }}">
  <link rel="icon" type="image/png" sizes="32x32"
        href="{{ url_for('docs.asset', filename='favicon-32x32.png') }}">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{{ spec_url }}"></div>
  <script src="{{ url_for('docs.asset', filename='swagger-ui-bundle.js') }}"></script>
  <script src="{{ url_for('docs.init_script') }}"></script>
</body>
</html>
"""

INIT_SCRIPT = """"use strict";
window.addEventListener("load", function () {
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""


@bp.get("")
@bp.get("/")
def page() -> Response:
    html = render_template_string(
        PAGE,
        title=current_app.config.get("API_TITLE", "API"),
        spec_url=url_for("api-docs.openapi_json"),
    )
    return Response(html, mimetype="text/html")


def index() -> Response:
    """`GET /`: where to start (the service has no home page; /docs is its manual)."""
    body = {
        "name": current_app.config.get("API_TITLE", "API"),
        "docs": url_for("docs.page"),
        "openapi": url_for("api-docs.openapi_json"),
        "legacy": "/v1/?input=<legacy JSON problem>",
        "health": "/health/live",
    }
    response = jsonify(body)
    response.headers["Link"] = f'<{body["docs"]}>; rel="service-doc"'
    return response


bp.record_once(lambda state: state.app.add_url_rule(
    "/", "index", index, methods=["GET"]))


@bp.get("/swagger-init.js")
def init_script() -> Response:
    response = Response(INIT_SCRIPT, mimetype="text/javascript")
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


@bp.get("/assets/<path:filename>")
def asset(filename: str) -> Response:
    if filename not in ASSETS:
        abort(404)
    response = send_from_directory(swagger_ui_path, filename, max_age=86400)
    return response
