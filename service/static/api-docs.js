// Starts Swagger UI on /api/v1/docs from the page's own OpenAPI document (a file of ours, so
// the Content-Security-Policy needs no inline script). No validator badge: no outside request.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
