"""Replicas behind HAProxy: failover, graceful restarts and staging across replicas."""
