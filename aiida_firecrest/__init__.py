"""AiiDA transport and scheduler plugins that drive a FirecREST v2 compatible API."""

__version__ = "0.1.0"
