"""Plain, faithful implementations of the code gankit's models reproduce; each module has
`build(device="cpu", **kw) -> (step_fn, samples_per_step)` for `benchmarks/speed.py`."""
