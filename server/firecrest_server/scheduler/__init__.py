"""The batch scheduler (Slurm) over SSH: pure argv builders and parsers, and the operations."""
