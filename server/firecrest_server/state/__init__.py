"""State that replicas must agree on, kept in Redis (``state.redis_url``)."""
