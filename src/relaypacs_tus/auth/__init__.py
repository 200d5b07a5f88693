"""Authentication and authorisation: caller JWTs (shared secret or JWKS), server-signed single-use upload
tokens, the pure-ASGI middleware that applies them with rate limits, and the token endpoints."""
