"""HTTP plumbing: errors, security headers, request ids, uploads and inputs, V2 binary tensors, OpenAPI."""
