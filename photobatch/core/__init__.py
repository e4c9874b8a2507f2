"""The bottom layer: settings, plain records, errors, the plugin interface and the scan lock.

Nothing here imports another photobatch package; everything else may import from here.
"""
