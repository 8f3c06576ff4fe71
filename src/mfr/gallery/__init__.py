"""Enrolled galleries: an on-disk store of face embeddings and nearest-identity search."""
