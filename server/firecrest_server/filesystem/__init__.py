"""Filesystem operations: each builds a remote request (SFTP or argv) and parses the answer."""
