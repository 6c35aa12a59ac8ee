"""Use cases of Auth0's Management API v2 (docs/specs/management-api.md): who calls
(``caller``) and the users endpoints (``users``)."""
