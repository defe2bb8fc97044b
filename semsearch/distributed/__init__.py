"""Encoding past one machine: `cluster` reaches Ray (an optional extra, imported only
when the Ray engine is chosen), `ray_engine` encodes an index build's chunks on a pool
of Ray actors."""
