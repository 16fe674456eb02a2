"""`dev/stack`: install, start, restart and stop a real single-machine HPC stack.

Standard library only: `dev/stack install` runs before the project's virtualenv exists.
"""
