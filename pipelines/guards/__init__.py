"""Guards at the boundaries: each refuses an input that would take more than its limit
(:mod:`pipelines.limits`) or lead outside where it may, before the expensive work starts."""
