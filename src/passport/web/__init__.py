"""Web layer: routing, parameter binding, the envelope, JSONP, CORS/CSRF, middleware."""
