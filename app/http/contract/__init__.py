"""The API contract: request and response types, each view's @api declaration, the generated OpenAPI document."""
