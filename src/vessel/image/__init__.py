"""Images: references, the content store, manifests, layer unpacking, snapshots and the image store.

Knows nothing about containers; the engine consumes the mounts it returns.
"""

__all__ = []
