"""Status operations that ask the cluster: who the caller is there."""
