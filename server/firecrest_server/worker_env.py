"""What the command line passes to its uvicorn workers through the environment.

A module of its own, importing nothing: the command line's module is imported again by every
worker before the worker can answer its supervisor (cli.py explains why that must be quick).
"""

# The configuration file each worker reads.
CONFIG_ENV = "FIRECREST_SERVER_CONFIG"
# The staging URL signing key the command line made for its workers when none is configured.
SIGNING_KEY_ENV = "FIRECREST_SERVER_SIGNING_KEY"
# The directory where the workers of one server mark themselves started (worker_start.py).
START_DIR_ENV = "FIRECREST_SERVER_START_DIR"
