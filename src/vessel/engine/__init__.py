"""The engine: containers made from images, supervised without a daemon.

See docs/engine.md for the processes, the state and the files involved.
"""
