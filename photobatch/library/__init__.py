"""The user's library on disk: discovery, EXIF, decoding, the index and the sidecars."""
