"""nopass: a self-hosted passwordless login server that speaks Auth0's Authentication API."""

__version__ = "0.1.0"
__all__ = ["__version__"]
