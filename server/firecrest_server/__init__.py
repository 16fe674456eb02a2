"""FirecREST v2 compatible API server."""

__version__ = "0.1.0"

# The FirecREST API level whose paths, shapes and status codes we implement. Clients such as
# pyfirecrest switch code paths on the F7T-AppVersion header, so it carries this, never __version__.
FIRECREST_API_VERSION = "2.6.0"
