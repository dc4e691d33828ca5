"""The `tailor` command: the top of the import graph (it may import every layer; nothing imports it)."""
