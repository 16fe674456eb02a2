"""Wire shapes: what goes over HTTP, in FirecREST v2's camelCase."""
