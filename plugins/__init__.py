"""First-party plugins: sidecar writers and exporters, registered like any third-party one."""
