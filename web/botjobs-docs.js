/*
 * botjobs-docs.js - starts Swagger UI on /api/docs/openapi.json: the same document as /api/openapi.json,
 * loaded from next to the JSON Schemas its relative $refs name. Nothing is fetched from elsewhere: no
 * validator badge (validatorUrl: null) and no configuration from the query string.
 */
window.addEventListener("load", function () {
	window.ui = SwaggerUIBundle({
		url: "/api/docs/openapi.json",
		dom_id: "#swagger-ui",
		presets: [SwaggerUIBundle.presets.apis],
		layout: "BaseLayout",
		deepLinking: true,
		validatorUrl: null,
		queryConfigEnabled: false,
		docExpansion: "list",
		defaultModelsExpandDepth: 1,
		displayRequestDuration: true
	});
});
