"""Index builds past one machine: `cluster` reaches Ray (an optional extra, imported
only when the Ray engine is chosen), `parts` cuts a corpus into the parts workers read
alone, `shards` is what a worker writes for a part, `assemble` builds the index folder
from the shards on disk, and `ray_engine` runs the workers and the assembly's tasks."""
