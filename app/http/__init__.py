"""HTTP plumbing: errors, security headers, request ids, uploads and inputs, V2 binary tensors; contract/: the API's
types and OpenAPI document."""
