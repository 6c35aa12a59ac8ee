"""JOSE and OIDC pieces, organised by spec: keys (RFC 7517/7638), JWTs (RFC 7519/8725/9068),
claims (OIDC Core), discovery (OIDC Discovery)."""
