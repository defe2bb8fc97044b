"""Encoding past one machine. `ray_engine` encodes an index build's chunks on a pool of
Ray actors; Ray is an optional extra and is imported only when that engine is chosen."""
