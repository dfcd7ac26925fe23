// Renders /openapi.json with Swagger UI. `validatorUrl: null`: Swagger UI would otherwise send the
// document to validator.swagger.io, a request that leaves the machine.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#reference",
  validatorUrl: null,
  deepLinking: true,
  tryItOutEnabled: false,
});
