"""The HTTP API's routers, one module per resource; proof_api.app composes them."""
